'use strict';
// A TCP port free on this machine now (for a launched group's rendezvous).
const net = require('node:net');

module.exports = function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
};
