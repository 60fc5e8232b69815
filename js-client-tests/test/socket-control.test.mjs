// phoenix.js against examples/socket_control.rs: a channel ends its own
// socket politely (`ChannelSocket::disconnect`: close 1001 for every socket
// with the id) or abruptly (`ChannelSocket::kill`: the connection drops with
// no close frame, 1006 on the client); phoenix.js reconnects and rejoins
// after both.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import path from "node:path"
import {startServer, binary, newSocket, connect, eventually, settle} from "./helpers.mjs"

let server
before(async () => {
  const bin = path.join(path.dirname(binary("x")), "examples", "socket_control")
  server = await startServer(bin, port => [String(port)], {label: "socket_control"})
})

/** A connected socket of `user`, its channel joined, counting joins/closes. */
async function joined(user){
  const socket = newSocket(server, {params: {user}})
  const seen = {opens: 0, closes: [], joins: 0}
  socket.onOpen(() => { seen.opens++ })
  socket.onClose(e => { seen.closes.push(e && e.code) })
  await connect(socket)
  const channel = socket.channel(`control:${user}`)
  channel.join().receive("ok", () => { seen.joins++ })
  await eventually(`${user} joined`, () => seen.joins === 1)
  return {socket, channel, seen}
}

describe("a channel ends its socket", () => {
  it("kill: the connection drops with no close frame (1006); phoenix.js reconnects and rejoins", {timeout: 15000}, async () => {
    const {socket, channel, seen} = await joined("kim")
    const id = await settle(channel.push("whoami", {}))
    assert.deepEqual(id, {status: "ok", response: {id: "user_socket:kim"}})
    channel.push("kill", {})
    await eventually("the socket closed", () => seen.closes.length === 1)
    assert.equal(seen.closes[0], 1006, "no close frame: an abnormal close")
    await eventually("reconnected and rejoined", () => seen.opens === 2 && seen.joins === 2)
    socket.disconnect()
  })

  it("disconnect: every socket of the id closes with 1001; another id stays; both reconnect", {timeout: 15000}, async () => {
    const first = await joined("dora")
    const second = await joined("dora")
    const other = await joined("olga")
    first.channel.push("disconnect", {})
    await eventually("dora's sockets closed", () => first.seen.closes.length === 1 && second.seen.closes.length === 1)
    assert.deepEqual([first.seen.closes[0], second.seen.closes[0]], [1001, 1001])
    await eventually("dora reconnected and rejoined", () => first.seen.joins === 2 && second.seen.joins === 2)
    assert.deepEqual(other.seen.closes, [], "olga's socket is untouched")
    for(const {socket} of [first, second, other]){ socket.disconnect() }
  })
})
