/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // hyparquet ships ES modules only: ts-jest turns them into CommonJS for jest's module system.
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
    '/node_modules/hyparquet(-writer)?/.+\\.js$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(hyparquet|hyparquet-writer)/)'],
  // Each test file loads libtorch (~0.7 s, ~290 libraries): two workers fit the 2-core CI machine.
  maxWorkers: 2,
  testTimeout: 60000,
  setupFiles: ['<rootDir>/test/support/setup.js'],
};
