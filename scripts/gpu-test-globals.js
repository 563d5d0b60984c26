'use strict';
// The GPU machine carries no jest (it would not fit the 64 MiB carry limit beside a Node binary):
// the compiled test files run under node:test, with jest's own `expect` package for assertions.
const test = require('node:test');
const { expect } = require('expect');

// jest's it.each(table)(title, fn) with %j/%s/%p/%i placeholders, on top of node:test.
function withEach(run) {
  const wrapped = (...args) => run(...args);
  wrapped.skip = run.skip;
  wrapped.only = run.only;
  wrapped.each = (table) => (title, fn) => {
    for (const row of table) {
      const args = Array.isArray(row) ? row : [row];
      let k = 0;
      const name = title.replace(/%[jspid]/g, () => JSON.stringify(args[k++]));
      run(name, () => fn(...args));
    }
  };
  return wrapped;
}

Object.assign(globalThis, {
  describe: withEach(test.describe),
  it: withEach(test.it),
  test: withEach(test.it),
  beforeAll: test.before,
  afterAll: test.after,
  beforeEach: test.beforeEach,
  afterEach: test.afterEach,
  expect,
});
