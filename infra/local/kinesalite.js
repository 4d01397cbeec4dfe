// Starts kinesalite (in-memory Kinesis emulator) bound to loopback only: its own CLI listens on
// every interface. Usage: node kinesalite.js PORT. In a container, KINESALITE_HOST=0.0.0.0 lets
// the other containers reach it (the compose file does not publish its port).
'use strict'
const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || 4567)
const host = process.env.KINESALITE_HOST || '127.0.0.1'
// A high shard limit: the test suite creates a fresh stream per test in one emulator.
const server = kinesalite({ createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100000 })

server.listen(port, host, (err) => {
  if (err) throw err
  console.log(JSON.stringify({ msg: 'kinesalite listening', host, port }))
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)))
}
