// Symbol.dispose / Symbol.asyncDispose where the runtime has them (Node ≥ 20.4 partly, 22+), else
// the well-known symbols TypeScript's `using` falls back to: one definition for every disposable class.
export const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
export const asyncDisposeSymbol: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');
