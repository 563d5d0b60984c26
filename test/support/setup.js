// jest runs tests in a vm context that lacks Node's Symbol.dispose/asyncDispose (Node 20 defines
// them on the main realm only); give the sandbox the same registered symbols Node uses.
for (const [name, key] of [['dispose', 'nodejs.dispose'], ['asyncDispose', 'nodejs.asyncDispose']]) {
  if (typeof Symbol[name] !== 'symbol') Object.defineProperty(Symbol, name, { value: Symbol.for(key) });
}
