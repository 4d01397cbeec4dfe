// Starts kinesalite (in-memory Kinesis emulator) bound to loopback only: its own CLI listens on
// every interface. Usage: node kinesalite.js PORT
'use strict'
const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || 4567)
// A high shard limit: the test suite creates a fresh stream per test in one emulator.
const server = kinesalite({ createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100000 })

server.listen(port, '127.0.0.1', (err) => {
  if (err) throw err
  console.log(JSON.stringify({ msg: 'kinesalite listening', host: '127.0.0.1', port }))
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)))
}
