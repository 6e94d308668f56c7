// Validation and quoting for every value that reaches a rendered file. Values are checked against the same
// rules as the lab's configuration (a hostile value fails here, with the field named, before anything is
// rendered), and then single-quoted for bash anyway, so that a rule loosened later cannot open a hole.
import { createHash } from "node:crypto";
import { type LabConfig, LabConfigSchema } from "../core/config.ts";
import { isIpv4, parseCidr } from "../core/ipv4.ts";

export class RenderError extends Error {
  override name = "RenderError";
}

/** Re-validates a lab's configuration (it may not have come through parseLabConfig) and names every bad field. */
export const validLab = (lab: LabConfig): LabConfig => {
  const result = LabConfigSchema.safeParse(lab);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  lab.${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new RenderError(`refusing to render for an invalid lab configuration:\n${lines.join("\n")}`);
  }
  return result.data;
};

export const requireIpv4 = (what: string, value: string): string => {
  if (!isIpv4(value))
    throw new RenderError(`${what} must be an IPv4 address such as 10.0.1.10, got ${JSON.stringify(value)}`);
  return value;
};

export const requireCidr = (what: string, value: string): string => {
  if (parseCidr(value) === undefined) {
    throw new RenderError(
      `${what} must be an IPv4 CIDR block such as 10.0.1.0/24, got ${JSON.stringify(value)}`,
    );
  }
  return value;
};

export const requireMatch = (what: string, value: string, pattern: RegExp, expected: string): string => {
  if (!pattern.test(value))
    throw new RenderError(`${what} must be ${expected}, got ${JSON.stringify(value)}`);
  return value;
};

export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** Quotes a value for bash: single quotes, with embedded single quotes closed, escaped and reopened. */
export const shQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

/** A bash array literal of quoted words: ('a' 'b'). */
export const shArray = (values: readonly string[]): string => `(${values.map(shQuote).join(" ")})`;

/**
 * A here-document that writes `content` to the stdin of `command`, with no expansion at all (quoted
 * delimiter). The delimiter is chosen not to occur in the content.
 */
export const heredoc = (command: string, content: string): string => {
  const delimiter = `LABGATE_EOF_${createHash("sha256").update(content).digest("hex").slice(0, 8)}`;
  if (content.split("\n").includes(delimiter))
    throw new RenderError("here-document delimiter occurs in its content");
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `${command} <<'${delimiter}'\n${body}${delimiter}`;
};

/** Content safe inside an unquoted here-document: only the listed ${variables} expand, nothing else can. */
export const expandingHeredoc = (command: string, content: string, variables: readonly string[]): string => {
  const stripped = variables.reduce((text, name) => text.replaceAll(`\${${name}}`, ""), content);
  if (/[$`\\]/.test(stripped)) throw new RenderError("unquoted here-document content contains $, ` or \\");
  const delimiter = "LABGATE_EOF";
  if (content.split("\n").includes(delimiter))
    throw new RenderError("here-document delimiter occurs in its content");
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `${command} <<${delimiter}\n${body}${delimiter}`;
};
