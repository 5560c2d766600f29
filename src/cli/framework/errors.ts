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

/**
 * The command was understood but could not be carried out (an output that exists, a port in use,
 * a write that failed, ...). Exit code 1 unless the command documents another.
 */
export class CommandFailed extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CommandFailed';
    this.exitCode = exitCode;
  }
}

/**
 * An input the user named cannot be used: a file that is unreadable, not PEM, a key that does
 * not match its certificate, a certificate that cannot do what was asked. Exit code 2, like a
 * UsageError: the fix is in the command line or the files it names, and 1 stays free for the
 * answer of commands such as `dc inspect` (does not verify) and `probe` (no delegated credential).
 */
export class InputError extends CommandFailed {
  constructor(message: string) {
    super(message, 2);
    this.name = 'InputError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
