// What the adapters need of a logger: Powertools' Logger fits, and so does `console` (the default).
export interface Log {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
}

export const consoleLog: Log = console;
