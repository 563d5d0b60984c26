/** Every error torch-dpo throws on purpose is a TorchDpoError; `code` is stable across releases. */
export class TorchDpoError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** libtorch refused an operation (shape mismatch, bad device, out of memory, ...). */
export class NativeError extends TorchDpoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_NATIVE', options);
  }
}

/** The addon could not be found or loaded; the message says what to run or set. */
export class AddonLoadError extends TorchDpoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_ADDON_LOAD', options);
  }
}

/** A Tensor (or other native object) was used after dispose(). */
export class DisposedError extends TorchDpoError {
  constructor(what: string) {
    super(`${what} was disposed: it can no longer be used`, 'ERR_DISPOSED');
  }
}

/** An API called out of its contract (out of order, or with what it excludes): a bug in the caller. */
export class UsageError extends TorchDpoError {
  constructor(message: string) {
    super(message, 'ERR_USAGE');
  }
}

/** Invalid configuration, caught at the boundary before any compute. */
export class ConfigError extends TorchDpoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_CONFIG', options);
  }
}

/** Invalid input data; the message names the file, line and field. */
export class DataError extends TorchDpoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_DATA', options);
  }
}

/**
 * A file-system operation failed: the message names the action, the path, the OS reason and, during
 * training, the step. `osCode` keeps the OS code (ENOSPC, EACCES, EROFS, …).
 */
export class FileError extends TorchDpoError {
  readonly osCode: string | undefined;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_FILE', options);
    this.osCode = (options?.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}
