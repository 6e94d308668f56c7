// Read-your-writes for the instance tags labgate keeps its state in. EC2 is eventually consistent: a tag
// written now may be missing from a DescribeInstances a moment later, and a reconcile that follows on the
// heels of another would then lease a credential that is already leased. The tags this container wrote in
// the last minutes are laid over what DescribeInstances returns until EC2 has surely caught up.
// https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html

/** Far longer than EC2 takes to converge (seconds), far shorter than anything an operator would fix by hand. */
export const RECENT_TAG_TTL_MS = 2 * 60_000;

const writes = new Map<string, Map<string, { readonly value: string | undefined; readonly at: number }>>();

/** Records tags just written (value) or deleted (undefined) on an instance. */
export const rememberTags = (
  instanceId: string,
  tags: readonly { readonly key: string; readonly value: string | undefined }[],
  now: number = Date.now(),
): void => {
  const entry = writes.get(instanceId) ?? new Map();
  for (const { key, value } of tags) entry.set(key, { value, at: now });
  writes.set(instanceId, entry);
};

/** The instance's tags as DescribeInstances gave them, with this container's recent writes on top. */
export const withRecentTags = (
  instanceId: string,
  described: ReadonlyMap<string, string | undefined>,
  now: number,
): Map<string, string | undefined> => {
  const merged = new Map(described);
  const entry = writes.get(instanceId);
  for (const [key, { value, at }] of entry ?? []) {
    if (now - at > RECENT_TAG_TTL_MS) entry?.delete(key);
    else if (value === undefined) merged.delete(key);
    else merged.set(key, value);
  }
  if (entry?.size === 0) writes.delete(instanceId);
  return merged;
};

/** Forgets every write (tests). */
export const forgetRecentTags = (): void => writes.clear();
