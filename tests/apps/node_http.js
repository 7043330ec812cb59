// SPDX-License-Identifier: MIT
// Node.js (libuv's epoll loop) over the shim: `node node_http.js server PORT`
// serves /N with N checked bytes and closes each connection; `node
// node_http.js client PORT COUNT` makes COUNT requests one after another on
// fresh connections (agent: false), so the loop's epoll set outlives every
// shimmed socket it held, checks every body and prints "DONE <n>".
'use strict';
const http = require('http');
const [mode, port, count] = [process.argv[2], +process.argv[3], +process.argv[4]];

function body(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + n) & 0xff;
  return b;
}

if (mode === 'server') {
  http.createServer((req, res) => {
    const n = Math.min(+req.url.slice(1) || 0, 1 << 20);
    res.setHeader('Connection', 'close');
    res.end(body(n));
  }).listen(port, '127.0.0.1', () => console.log('LISTEN ' + port));
} else {
  let done = 0;
  const one = () => {
    const n = (done * 7919) % 200000;
    http.get({ host: '127.0.0.1', port, path: '/' + n, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        if (!Buffer.concat(parts).equals(body(n))) {
          console.log('BAD body of request ' + done);
          process.exit(1);
        }
        if (++done < count) setImmediate(one);
        else console.log('DONE ' + done);
      });
    }).on('error', (e) => {
      console.log('ERR ' + e.message);
      process.exit(2);
    });
  };
  one();
}
