/**
 * Errors a command reports to its user as one line, without a stack trace.
 * Anything else escaping a command is a bug and is reported as an internal error.
 */

/** Bad invocation: unknown or missing flag, a value that does not parse. Exit code 2. */
export class UsageError extends Error {
  /** The flag at fault, e.g. '--key-type', when there is one; the message already names it. */
  readonly flag: string | undefined;
  constructor(message: string, flag?: string) {
    super(flag && !message.startsWith(flag) ? `${flag}: ${message}` : message);
    this.name = 'UsageError';
    this.flag = flag;
  }
}

/** The command was understood but could not be carried out (unreadable file, bad key, ...). Exit code 1. */
export class CommandFailed extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CommandFailed';
    this.exitCode = exitCode;
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
