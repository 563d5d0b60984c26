'use strict';
// The GPU machine carries no jest (it would not fit the 64 MiB carry limit beside a Node binary):
// the compiled test files run under node:test, with jest's own `expect` package for assertions.
const test = require('node:test');
const { expect } = require('expect');

Object.assign(globalThis, {
  describe: test.describe,
  it: test.it,
  test: test.it,
  beforeAll: test.before,
  afterAll: test.after,
  beforeEach: test.beforeEach,
  afterEach: test.afterEach,
  expect,
});
