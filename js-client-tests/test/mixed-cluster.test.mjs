// A mixed cluster (issue 11): fawkes nodes on the Redis channel of a Phoenix
// app's PubSub (`Conf.PubSub`), next to a "Phoenix node" played by this test
// over raw RESP: it PUBLISHes the bytes Phoenix 1.8 + phoenix_pubsub_redis
// 3.1 published (../shared/interop/redis_capture.json) and the messages
// crafted as another node (redis_injection.json), and it SUBSCRIBEs to check
// what fawkes publishes. Real redis-server, real phoenix.js clients.
//
// Nodes: `fawkes serve --redis-url URL --node-name fawkes_b --config FILE`
// where FILE has only `[cluster] phoenix_pubsub = "Conf.PubSub"`; and the
// conformance app (the app the recordings were made with, so its clients can
// be compared frame by frame with Phoenix's) as `fawkes_c` (compression 6)
// and as `phx_a` (the recorded Phoenix node's name, to replay the injection
// cases addressed to it).
import {describe, it, before, after} from "node:test"
import assert from "node:assert/strict"
import {spawnSync} from "node:child_process"
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from "node:fs"
import os from "node:os"
import path from "node:path"
import {Serializer} from "phoenix"
import {
  binary, chatDir, connect, eventually, joinOk, newSocket, nextEvent, pushed, repoRoot,
  startServer,
} from "./helpers.mjs"
import {
  Resp, Tuple, atomExt, binaryExt, broadcastMessage, decodeTerm, jsonText, readMessage, renameNode,
} from "./redis-phoenix.mjs"

const interop = path.resolve(repoRoot, "..", "shared", "interop")
const capture = JSON.parse(readFileSync(path.join(interop, "redis_capture.json"), "utf8"))
const injection = JSON.parse(readFileSync(path.join(interop, "redis_injection.json"), "utf8"))
const CHANNEL = "phx:Elixir.Conf.PubSub.Adapter"
const API_SECRET = "mixed cluster test secret"
const hex = h => Buffer.from(h, "hex")

let redis, publisher, subscriber, fawkesB, nodeC, nodePhxA, tmp
/** Every message on the channel, as the Phoenix side reads it. */
const phoenixSide = []

function redisServerPath(){
  const found = spawnSync("sh", ["-c", "command -v redis-server"], {encoding: "utf8"})
  const bin = found.stdout.trim()
  if(found.status !== 0 || !bin){ throw new Error("redis-server is not installed (./scripts/setup installs it)") }
  return bin
}

function startConformanceNode(name, extra = []){
  return startServer(binary("fawkes-conformance"), port => [
    "serve", "--port", String(port), "--redis-url", `redis://127.0.0.1:${redis.port}`,
    "--node-name", name, "--phoenix-pubsub", "Conf.PubSub", ...extra,
  ], {label: `fawkes-conformance ${name}`})
}

before(async () => {
  redis = await startServer(redisServerPath(), port => [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
  ], {label: "redis-server"})
  publisher = await Resp.connect(redis.port)
  subscriber = await Resp.connect(redis.port)
  subscriber.onMessage = (channel, payload) => { if(channel === CHANNEL){ phoenixSide.push(payload) } }
  await subscriber.command("SUBSCRIBE", CHANNEL)

  tmp = mkdtempSync(path.join(os.tmpdir(), "fawkes-mixed-"))
  const config = path.join(tmp, "fawkes.toml")
  writeFileSync(config, "[cluster]\nphoenix_pubsub = \"Conf.PubSub\"\n")
  fawkesB = await startServer(binary("fawkes"), port => [
    "serve", "--port", String(port), "--bind", "127.0.0.1", "--static-dir", chatDir,
    "--redis-url", `redis://127.0.0.1:${redis.port}`, "--node-name", "fawkes_b", "--config", config,
  ], {label: "fawkes fawkes_b", env: {FAWKES_API_SECRET: API_SECRET}})
  nodeC = await startConformanceNode("fawkes_c", ["--compression", "6"])
  nodePhxA = await startConformanceNode("phx_a")
  // Three fawkes nodes and the Phoenix side listen on the channel.
  await eventually("every node subscribed to " + CHANNEL, async () => {
    const [, count] = await publisher.command("PUBSUB", "NUMSUB", CHANNEL)
    return count === 4
  }, 15000)
})

after(() => {
  publisher?.close()
  subscriber?.close()
  if(tmp){ rmSync(tmp, {recursive: true, force: true}) }
})

/** PUBLISHes `bytes` as a Phoenix node does; resolves with the receiver count. */
const publish = bytes => publisher.command("PUBLISH", CHANNEL, bytes)

/**
 * A phoenix.js client of `server` joined to `topic` that records every raw
 * frame it receives (text or binary) except replies, and its first close.
 */
async function recordingClient(server, topic, params = {}){
  const frames = []
  const client = {frames, closedAt: null, closeCode: null}
  const socket = newSocket(server, {
    params,
    decode: (raw, callback) => {
      if(client.closedAt === null){
        if(typeof raw === "string"){
          // Replies, and the chat's own presence pushes, are not broadcasts.
          const event = JSON.parse(raw)[3]
          if(event !== "phx_reply" && !event.startsWith("presence_")){ frames.push({text: raw}) }
        } else {
          frames.push({binary: Buffer.from(raw)})
        }
      }
      Serializer.decode(raw, callback)
    },
  })
  socket.onClose(event => {
    if(client.closedAt === null){ client.closedAt = frames.length; client.closeCode = event.code }
  })
  await connect(socket)
  const channel = socket.channel(topic, {})
  client.socket = socket
  client.channel = channel
  const welcome = server.label.startsWith("fawkes-conformance") ? nextEvent(channel, "welcome") : null
  await joinOk(channel)
  if(welcome){ await welcome }
  frames.length = 0
  return client
}

/** Checks `client`'s recorded frames against Phoenix's recorded ones, in order. */
function assertFrames(client, expected, what){
  const got = client.frames
  assert.equal(got.length, expected.length,
    `${what}: ${got.length} frames, Phoenix's client got ${expected.length}:\n` +
    JSON.stringify(got.map(f => f.text ?? f.binary.toString("base64")), null, 1))
  expected.forEach((want, i) => {
    const frame = got[i]
    if(want.binary_b64 !== undefined){
      assert.ok(frame.binary, `${what} #${i}: expected a binary frame, got ${frame.text}`)
      assert.deepEqual([...frame.binary], [...Buffer.from(want.binary_b64, "base64")], `${what} #${i}`)
      return
    }
    assert.ok(frame.text !== undefined, `${what} #${i}: expected a text frame`)
    const wanted = JSON.parse(want.text)
    // Phoenix's client joined with join_ref "1"/"2"; this one has its own.
    if(wanted[0] !== null){ wanted[0] = client.channel.joinRef() }
    assert.deepEqual(JSON.parse(frame.text), wanted, `${what} #${i}`)
    // Integers beyond 2^53 cross with every digit, as Jason writes them.
    for(const big of want.text.match(/\d{17,}/g) ?? []){
      assert.ok(frame.text.includes(big), `${what} #${i}: ${big} not written exactly in ${frame.text}`)
    }
  })
}

const withoutReplies = frames => frames.filter(f => f.text === undefined || JSON.parse(f.text)[3] !== "phx_reply")

describe("mixed cluster: Phoenix nodes -> fawkes", () => {
  it("every captured Phoenix publish reaches phoenix.js clients on fawkes as it reached Phoenix's (JSON, binary, intercepted, disconnect)", {timeout: 30000}, async () => {
    const alice = await recordingClient(nodeC, "room:x", {user_id: "alice"})
    const bob = await recordingClient(nodeC, "room:x", {user_id: "bob"})
    const expected = {a: [], b: []}
    let replayed = 0
    for(const action of capture.actions){
      for(const cap of action.captures){
        assert.equal(await publish(hex(cap.payload_hex)), 4, "every node and the Phoenix side get it")
        replayed++
      }
      if(action.captures.length === 0){ continue } // the join itself
      const got = action.websocket_clients_received
      let a = withoutReplies(got.a ?? [])
      const b = withoutReplies(got.b ?? [])
      // broadcast_from's sender is not on the wire: a remote node delivers it
      // to every local subscriber, alice included.
      if(action.action.includes("broadcast_from")){ a = b }
      expected.a.push(...a.filter(f => !f.closed))
      expected.b.push(...b.filter(f => !f.closed))
      // One action at a time: an intercepted event goes through its
      // channel (handle_out) while the next broadcast takes the fast lane,
      // so two actions' frames race on fawkes as they do on Phoenix.
      const want = expected.a.length
      await eventually(`alice to get ${action.action}'s frames`, () => alice.frames.length >= want, 10000)
    }
    assert.equal(replayed, capture.actions.reduce((n, a) => n + a.captures.length, 0))
    // The last capture is the disconnect of users_socket:bob.
    await eventually("bob's socket to be closed by the disconnect", () => bob.closedAt !== null, 10000)
    assert.equal(bob.closeCode, 1001)
    // A sentinel published after everything: alice sees it right after the
    // recorded frames, so nothing else reached her (presence tracker
    // traffic, nobody:listens, bob's disconnect).
    const sentinel = injection.cases.find(c => c.name === "atom_node_except")
    await publish(hex(sentinel.payload_hex))
    await eventually("alice to get the sentinel", () => alice.frames.length >= expected.a.length + 1, 10000)
    assertFrames(alice, [...expected.a, ...sentinel.client_received], "alice")
    assertFrames({...bob, frames: bob.frames.slice(0, bob.closedAt)}, expected.b, "bob")
    assert.ok(expected.a.some(f => f.binary_b64) && expected.a.some(f => f.text?.includes("seen_by")),
      "the capture has a binary and an intercepted broadcast")
  })

  it("the injection cases give what Phoenix's client saw (delivered, ignored, compressed, UTF-8 atoms, :only, disconnect)", {timeout: 30000}, async () => {
    const alice = await recordingClient(nodePhxA, "room:x", {user_id: "alice"})
    const expected = []
    const skipped = []
    // The disconnect last: Phoenix's client had reconnected for the two
    // hand-built cases recorded after it.
    const ordered = [...injection.cases.filter(c => c.name !== "disconnect_alice"),
      ...injection.cases.filter(c => c.name === "disconnect_alice")]
    assert.equal(ordered.length, 18)
    for(const c of ordered){
      // Phoenix's channel crashed on a non-intercepted event sent with the
      // Phoenix.PubSub dispatcher (RoomChannel has no handle_out for it);
      // fawkes does not look at the dispatcher and delivers it.
      if(c.name === "pubsub_dispatcher"){ skipped.push(c.name); continue }
      await publish(hex(c.payload_hex))
      expected.push(...c.client_received.filter(f => !f.closed))
      // One case at a time: an intercepted event (through its channel)
      // and the next fast-lane broadcast race, on Phoenix as on fawkes.
      if(c.name !== "disconnect_alice"){
        const want = expected.length
        await eventually(`alice to get ${c.name}`, () => alice.frames.length >= want, 10000)
      }
    }
    assert.deepEqual(skipped, ["pubsub_dispatcher"])
    await eventually("alice's socket to be closed by disconnect_alice", () => alice.closedAt !== null, 10000)
    assert.equal(alice.closeCode, 1001)
    assertFrames({...alice, frames: alice.frames.slice(0, alice.closedAt)}, expected, "alice")
  })

  it("phoenix.js clients of `fawkes serve` get Phoenix's JSON and binary broadcasts", {timeout: 20000}, async () => {
    const carol = await recordingClient(fawkesB, "room:x", {user: "carol"})
    const byAction = name => capture.actions.find(a => a.action.startsWith(name))
    const cases = [
      byAction("POST /api/broadcast room:x http_evt payload=ints"),
      byAction("POST /api/broadcast room:x http_evt payload=unicode"),
      byAction("alice sends binary"),
    ]
    for(const action of cases){ await publish(hex(action.captures[0].payload_hex)) }
    const expected = cases.flatMap(a => a.websocket_clients_received.b)
    await eventually("carol to get them", () => carol.frames.length >= expected.length, 10000)
    assertFrames(carol, expected, "carol")
  })

  it("a payload with no JSON form is dropped with a warning, and the node goes on", {timeout: 20000}, async () => {
    const dave = await recordingClient(fawkesB, "room:x", {user: "dave"})
    const pid = Buffer.concat([Buffer.from([88]), atomExt("nonode@nohost"), Buffer.from([0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0])])
    await publish(broadcastMessage("phx_a", "room:x", "with_pid", pid))
    const after = injection.cases.find(c => c.name === "string_node_except")
    await publish(hex(after.payload_hex))
    await eventually("dave to get the next broadcast", () => dave.frames.length >= 1, 10000)
    assertFrames(dave, after.client_received, "dave")
    await eventually("a warning about the dropped broadcast", () => /WARN.*with_pid.*has no JSON form.*pid/.test(fawkesB.log()))
  })
})

describe("mixed cluster: fawkes -> Phoenix nodes", () => {
  /** The next message on the channel published by node `name`. */
  async function nextFrom(name, since){
    let found
    await eventually(`a message from ${name}`, () => {
      for(let i = since; i < phoenixSide.length; i++){
        let term
        // Tracker traffic and crafted messages use tags this reader skips.
        try { term = decodeTerm(phoenixSide[i]).term } catch { continue }
        if(term instanceof Tuple && term.items[2]?.name === name){ found = phoenixSide[i]; return true }
      }
      return false
    }, 10000)
    return found
  }

  it("POST /api/broadcast (bearer secret) publishes exactly what Phoenix's Endpoint.broadcast did, under fawkes's node atom", {timeout: 30000}, async () => {
    const erin = await recordingClient(nodeC, "room:x", {user_id: "erin"})
    const posts = capture.actions.filter(a => a.action.startsWith("POST /api/broadcast") && !a.action.includes("disconnect"))
    assert.equal(posts.length, 8)
    for(const action of posts){
      const captured = hex(action.captures[0].payload_hex)
      const message = readMessage(captured)
      const body = `{"topic":${JSON.stringify(message.topic)},"event":${JSON.stringify(message.event)},"payload":${jsonText(message.payload)}}`
      const since = phoenixSide.length
      const res = await fetch(`${fawkesB.httpUrl}/api/broadcast`, {
        method: "POST",
        headers: {"content-type": "application/json", authorization: `Bearer ${API_SECRET}`},
        body,
        signal: AbortSignal.timeout(5000),
      })
      assert.equal(res.status, 200, await res.text())
      const published = await nextFrom("fawkes_b", since)
      assert.equal(published.toString("hex"), renameNode(captured, "phx_a", "fawkes_b").toString("hex"),
        `${action.action}: the bytes Phoenix published, with node :fawkes_b`)
    }
    // One broadcast domain: the other fawkes node's client got the room:x ones.
    await eventually("erin to get the room:x broadcasts", () => erin.frames.length >= 7)
    assert.deepEqual(erin.frames.map(f => JSON.parse(f.text)[3]), Array(7).fill("http_evt"))
    // Without the secret: refused, nothing published.
    const res = await fetch(`${fawkesB.httpUrl}/api/broadcast`, {
      method: "POST", headers: {"content-type": "application/json"},
      body: '{"topic":"room:x","event":"nope","payload":{}}', signal: AbortSignal.timeout(5000),
    })
    assert.equal(res.status, 401)
  })

  it("a channel broadcast on fawkes arrives as {3, :except, :fawkes_b, topic, %Broadcast{}, Phoenix.Channel.Server}", {timeout: 20000}, async () => {
    const frank = await recordingClient(fawkesB, "room:lobby", {user: "frank"})
    const gina = await recordingClient(fawkesB, "room:lobby", {user: "gina"})
    const since = phoenixSide.length
    assert.equal((await pushed(frank.channel, "new_msg", {body: "from fawkes", n: 1})).status, "ok")
    const message = readMessage(await nextFrom("fawkes_b", since))
    assert.equal(message.version, 3)
    assert.deepEqual(message.mode, {atom: "except"})
    assert.deepEqual(message.node, {atom: "fawkes_b"})
    assert.equal(message.topic, "room:lobby")
    assert.equal(message.struct, "Elixir.Phoenix.Socket.Broadcast")
    assert.deepEqual(message.structKeys, ["__struct__", "event", "payload", "topic"])
    assert.equal(message.event, "new_msg")
    assert.equal(message.broadcastTopic, "room:lobby")
    assert.deepEqual(message.dispatcher, {atom: "Elixir.Phoenix.Channel.Server"})
    assert.equal(message.compressed, false)
    // The payload is what a client of the same node got, with string keys.
    await eventually("gina to get it", () => gina.frames.length >= 1)
    assert.equal(jsonText(message.payload), JSON.stringify(JSON.parse(gina.frames[0].text)[4]))
    assert.deepEqual(JSON.parse(jsonText(message.payload)), {body: "from fawkes", n: 1})
  })

  it("a node with compression = 6 publishes compressed terms Phoenix can read (JSON and binary)", {timeout: 20000}, async () => {
    const hank = await recordingClient(nodeC, "room:x", {user_id: "hank"})
    let since = phoenixSide.length
    const pad = "x".repeat(500)
    assert.equal((await pushed(hank.channel, "broadcast", {pad})).status, "ok")
    const json = decodeTerm(await nextFrom("fawkes_c", since))
    assert.equal(json.compressed, true)
    const payload = Buffer.concat([Buffer.from([116, 0, 0, 0, 1]), binaryExt("pad"), binaryExt(pad)])
    assert.equal(json.body.toString("hex"), broadcastMessage("fawkes_c", "room:x", "broadcast", payload).toString("hex"))

    since = phoenixSide.length
    const bytes = new Uint8Array([0, 1, 254, 255, 98, 105, 110])
    hank.channel.push("binary_broadcast", bytes.buffer)
    const published = decodeTerm(await nextFrom("fawkes_c", since))
    const captured = capture.actions.find(a => a.action.startsWith("alice sends binary")).captures[0]
    // Compressed or not (term_to_binary keeps the plain form when zlib does
    // not make it smaller), the term is the one Phoenix published for it.
    assert.equal(published.body.toString("hex"), renameNode(hex(captured.payload_hex), "phx_a", "fawkes_c").toString("hex"))
    await eventually("hank's own binary broadcast", () => hank.frames.some(f => f.binary))
  })
})
