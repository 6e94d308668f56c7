// Errors of the AWS adapters, and how they recognise the AWS errors they handle.

/** An action could not be carried out; `actionId` names it in the plan, `cause` is the AWS error. */
export class ApplyError extends Error {
  override name = "ApplyError";
  constructor(
    readonly actionId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Whether an error is the AWS error with one of these codes (the SDK names its errors by their code). */
export const isAwsError = (error: unknown, ...codes: readonly string[]): error is Error =>
  error instanceof Error && codes.includes(error.name);

/** `Name: message` of any thrown value, for messages that name their cause. */
export const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
