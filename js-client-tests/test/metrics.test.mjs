// GET /metrics of the `fawkes` binary (on by default), scraped while real
// phoenix.js clients connect over both transports, join, push, are
// refused and leave: the Prometheus counters and gauges move as they should.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {LongPoll} from "phoenix"
import {
  startFawkes, newSocket, connect, joinOk, settle, nextEvent, cast, eventually, within,
} from "./helpers.mjs"

let server
before(async () => { server = await startFawkes() })

/** One scrape, as {"name{labels}": value}. */
async function scrape(){
  const res = await within(5000, "GET /metrics", fetch(`${server.httpUrl}/metrics`, {signal: AbortSignal.timeout(5000)}))
  assert.equal(res.status, 200)
  assert.match(res.headers.get("content-type"), /openmetrics-text/)
  const text = await res.text()
  const values = {}
  for(const line of text.split("\n")){
    if(!line || line.startsWith("#")){ continue }
    const at = line.lastIndexOf(" ")
    values[line.slice(0, at)] = Number(line.slice(at + 1))
  }
  return values
}

const ws = 'fawkes_connections{transport="websocket"}'
const lp = 'fawkes_connections{transport="longpoll"}'
const joinsOk = 'fawkes_joins_total{result="ok"}'
const joinsRefused = 'fawkes_joins_total{result="refused"}'
const clientClosed = 'fawkes_sessions_closed_total{reason="client_closed"}'

describe("/metrics during a phoenix.js session", () => {
  it("counts connections by transport, joins, messages, broadcasts, presence and closes", {timeout: 30000}, async () => {
    const before = await scrape()
    assert.equal(before[ws], 0)
    assert.equal(before[lp], 0)
    assert.equal(before.fawkes_channels_joined, 0)
    assert.equal(before.fawkes_presence_entries, 0)

    const alice = newSocket(server, {params: {user: "alice"}})
    const bob = newSocket(server, {params: {user: "bob"}, transport: LongPoll})
    await connect(alice)
    await connect(bob)
    const aliceRoom = alice.channel("room:metrics")
    const bobRoom = bob.channel("room:metrics")
    await joinOk(aliceRoom)
    await joinOk(bobRoom)
    // The chat relays new_msg to everyone else on the topic.
    const relayed = nextEvent(bobRoom, "new_msg")
    cast(aliceRoom, "new_msg", {body: "hi"})
    assert.deepEqual(await relayed, {body: "hi"})
    // A join the server refuses.
    const nowhere = alice.channel("nowhere:1")
    assert.equal((await settle(nowhere.join(), "join")).status, "error")
    nowhere.leave()

    const during = await eventually("counters after joins and a relayed push", async () => {
      const m = await scrape()
      return m[ws] === 1 && m[lp] === 1 && m.fawkes_presence_entries === 2 ? m : null
    })
    assert.equal(during.fawkes_channels_joined, 2)
    assert.equal(during[joinsOk] - before[joinsOk], 2)
    assert.equal(during[joinsRefused] - before[joinsRefused], 1)
    // Frames in: two joins, the push, the refused join (and heartbeats).
    assert.ok(during.fawkes_messages_in_total - before.fawkes_messages_in_total >= 4, JSON.stringify(during))
    // The relayed push is a broadcast that reached bob.
    assert.ok(during.fawkes_broadcasts_total - before.fawkes_broadcasts_total >= 1, JSON.stringify(during))
    assert.ok(during.fawkes_deliveries_total - before.fawkes_deliveries_total >= 1, JSON.stringify(during))
    // Out: at least the three join replies, the relayed push, the presence state pushes.
    assert.ok(during.fawkes_messages_out_total - before.fawkes_messages_out_total >= 6)
    assert.equal(during.fawkes_http_connections >= 1, true)

    alice.disconnect()
    bob.disconnect()
    const after = await eventually("counters after both clients left", async () => {
      const m = await scrape()
      return m[ws] === 0 && m[clientClosed] - before[clientClosed] >= 1 ? m : null
    })
    // Alice's channel left with her websocket; bob's longpoll session (and
    // its channel) lasts until its poll window passes unpolled.
    assert.equal(after.fawkes_channels_joined, after[lp])
    assert.equal(after.fawkes_slow_clients_evicted_total, 0)
    assert.equal(after.fawkes_draining, 0)
  })
})
