/**
 * One operation of a tool: a zod schema for its params and the function that runs it. The registry
 * holds operations of different param types side by side; {@link defineOperation} keeps each one
 * type-safe inside and hands the registry a uniform shape.
 */
import type { z } from 'zod';
import type { ToolFailure, ToolResult } from './tool-result.js';

/** What every running operation gets. */
export interface ToolContext {
  /** Aborted on cancel or timeout: pass it to every I/O call. */
  signal: AbortSignal;
  /** The registry's clock, for relative dates. */
  now: Date;
}

/** Params validated and bound: ready to run. */
export interface PreparedCall {
  ok: true;
  run(context: ToolContext): Promise<ToolResult>;
}

/** Why the params were refused: `path: problem` items, readable and free of the values themselves. */
export interface ParamsProblem {
  ok: false;
  problems: string[];
}

/** An operation as the registry sees it. */
export interface ToolOperation {
  prepare(params: unknown): PreparedCall | ParamsProblem;
}

/** A tool: its operations, and an optional guard that may refuse an operation before its params are read. */
export interface ToolDefinition {
  /** A refusal ("not configured", "sending is refused") for `operation`, or null to go on. */
  guard?: (operation: string) => ToolFailure | null;
  operations: Readonly<Record<string, ToolOperation>>;
}

/** Builds an operation whose `execute` receives params already parsed by `schema`. */
export function defineOperation<S extends z.ZodType>(
  schema: S,
  execute: (params: z.output<S>, context: ToolContext) => Promise<ToolResult>,
): ToolOperation {
  return {
    prepare(params) {
      const parsed = schema.safeParse(params ?? {});
      if (!parsed.success) {
        return {
          ok: false,
          problems: parsed.error.issues.map((issue) => {
            const path = issue.path.map(String).join('.');
            return path === '' ? issue.message : `${path}: ${issue.message}`;
          }),
        };
      }
      return { ok: true, run: (context) => execute(parsed.data, context) };
    },
  };
}
