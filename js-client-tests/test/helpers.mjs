// Shared helpers: start a fawkes server binary on a free port, build phoenix.js
// sockets against it, and turn phoenix.js callbacks into promises with bounded
// waits. Nothing here changes how phoenix.js is used: tests create Socket,
// Channel and Presence exactly as a frontend does.
import {spawn, spawnSync} from "node:child_process"
import {existsSync} from "node:fs"
import net from "node:net"
import path from "node:path"
import {fileURLToPath} from "node:url"
import {after} from "node:test"
import {Socket} from "phoenix"
import WebSocket from "ws"

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, "..", "..")
export const chatDir = path.join(repoRoot, "examples", "chat")
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
  : path.join(repoRoot, "target")

/** Path of a binary built by `cargo build` (debug profile). */
export function binary(name){
  return path.join(targetDir, "debug", name)
}

// ---------------------------------------------------------------------------
// timing

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Resolves with `promise`, or rejects after `ms` with a message naming `what`. */
export function within(ms, what, promise){
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `check` (sync or async) every 20 ms until it returns a truthy value. */
export async function eventually(what, check, ms = 5000){
  const deadline = Date.now() + ms
  let last
  for(;;){
    try {
      last = await check()
      if(last){ return last }
    } catch (e){
      last = e
    }
    if(Date.now() > deadline){
      throw new Error(`timed out after ${ms} ms waiting for ${what}` +
        (last instanceof Error ? ` (last error: ${last.message})` : ""))
    }
    await sleep(20)
  }
}

// ---------------------------------------------------------------------------
// servers

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(){
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const {port} = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function canConnect(port){
  return new Promise(resolve => {
    const sock = net.connect({port, host: "127.0.0.1"})
    sock.once("connect", () => { sock.destroy(); resolve(true) })
    sock.once("error", () => { sock.destroy(); resolve(false) })
  })
}

const running = new Set()
const servers = new Set()
const sockets = new Set()
// Once the test file is done: disconnect every socket (waiting, at most 2 s,
// until each is closed, so that a recording proxy sees the closes and the
// frames still on their way), then stop every server.
after(async () => {
  await Promise.all([...sockets].map(s =>
    within(2000, "socket to close", new Promise(resolve => s.disconnect(resolve))).catch(() => {})))
  sockets.clear()
  for(const server of servers){ await server.stop() }
  servers.clear()
})
// Servers must not outlive the test process, even when it is interrupted.
const killAll = () => { for(const child of running){ try { child.kill("SIGKILL") } catch {} } }
process.on("exit", killAll)
for(const signal of ["SIGINT", "SIGTERM", "SIGHUP"]){
  process.once(signal, () => { killAll(); process.kill(process.pid, signal) })
}

/**
 * Starts `bin args...` (the args get the port through `argsFor(port)`), waits
 * until the port accepts connections and returns a handle. The server is
 * killed when the test file ends, if the test did not stop it before.
 */
export async function startServer(bin, argsFor, {port, label = path.basename(bin), env = {}} = {}){
  if(!existsSync(bin)){
    throw new Error(`${bin} does not exist: build it first (cargo build from ${repoRoot})`)
  }
  port = port || await freePort()
  const child = spawn(bin, argsFor(port), {
    cwd: repoRoot,
    env: {RUST_LOG: "warn", ...process.env, ...env},
    stdio: ["ignore", "pipe", "pipe"],
  })
  running.add(child)
  let log = ""
  const keep = chunk => { log = (log + chunk.toString()).slice(-20000) }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  let exited = null
  const exitPromise = new Promise(resolve => child.once("exit", (code, signal) => {
    exited = {code, signal}
    running.delete(child)
    resolve(exited)
  }))

  const deadline = Date.now() + 10000
  for(;;){
    if(exited){
      throw new Error(`${label} exited (${JSON.stringify(exited)}) before accepting on port ${port}:\n${log}`)
    }
    if(await canConnect(port)){ break }
    if(Date.now() > deadline){
      child.kill("SIGKILL")
      throw new Error(`${label} did not accept connections on port ${port} within 10 s:\n${log}`)
    }
    await sleep(25)
  }

  const proxy = process.env.FAWKES_RECORD_OUT ? await startRecorder(port, label) : null
  const front = proxy ? proxy.port : port
  const server = {
    port: front,
    label,
    child,
    httpUrl: `http://127.0.0.1:${front}`,
    socketUrl: `ws://127.0.0.1:${front}/socket`,
    log: () => log,
    get exited(){ return exited },
    /**
     * Kills the server (SIGKILL unless told otherwise) and waits until it is
     * gone; a recording proxy in front of it is stopped first (SIGTERM, so it
     * writes its open transcripts).
     */
    async stop(signal = "SIGKILL"){
      if(proxy){ await proxy.stop() }
      if(!exited){ child.kill(signal) }
      await within(5000, `${label} to exit`, exitPromise)
    },
  }
  servers.add(server)
  return server
}

/**
 * With FAWKES_RECORD_OUT set, every server a test starts is put behind
 * `fawkes record` (its transcripts go to $FAWKES_RECORD_OUT/<label>/<port>, options
 * from FAWKES_RECORD_ARGS, split on spaces) and the tests talk to the proxy.
 * tests/js_record_replay.rs uses this to record this suite's traffic.
 */
async function startRecorder(upstreamPort, label){
  // One folder per proxy: transcript names are unique per recorder only.
  const out = path.join(process.env.FAWKES_RECORD_OUT, label, String(upstreamPort))
  const extra = (process.env.FAWKES_RECORD_ARGS || "").split(" ").filter(Boolean)
  const child = spawn(binary("fawkes"), ["record", "--upstream", `http://127.0.0.1:${upstreamPort}`,
    "--listen", "127.0.0.1:0", "--out", out, "--log-level", "warn", ...extra], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  })
  let log = ""
  child.stderr.on("data", chunk => { log = (log + chunk.toString()).slice(-20000) })
  running.add(child)
  const exitPromise = new Promise(resolve => child.once("exit", (code, signal) => {
    running.delete(child)
    resolve({code, signal})
  }))
  // The first line on stdout names the port: "fawkes record: listening on http://127.0.0.1:PORT, ..."
  const port = await within(10000, "fawkes record to listen", new Promise((resolve, reject) => {
    let seen = ""
    child.stdout.on("data", chunk => {
      seen += chunk.toString()
      const m = seen.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
      if(m){ resolve(Number(m[1])) }
    })
    exitPromise.then(status => reject(new Error(`fawkes record exited early: ${JSON.stringify(status)}:\n${log}`)))
  }))
  return {
    port,
    async stop(){
      child.kill("SIGTERM")
      await within(10000, "fawkes record to exit", exitPromise)
    },
  }
}

/** The conformance app of shared/conformance/APP.md. */
export function startConformance(opts = {}){
  return startServer(binary("fawkes-conformance"), port => ["serve", "--port", String(port)],
    {label: "fawkes-conformance", ...opts})
}

/** The `fawkes` binary serving the chat example. */
export function startFawkes(opts = {}){
  return startServer(binary("fawkes"),
    port => ["serve", "--port", String(port), "--bind", "127.0.0.1", "--static-dir", chatDir],
    {label: "fawkes", ...opts})
}

/** Installs examples/chat's pinned phoenix (served as /vendor/phoenix.mjs) when missing. */
export function ensureChatDeps(){
  if(existsSync(path.join(chatDir, "node_modules", "phoenix", "priv", "static", "phoenix.mjs"))){ return }
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  // output is captured: the test runner reads this process's stdout
  const res = spawnSync(npm, ["ci", "--no-audit", "--no-fund", "--prefix", chatDir], {encoding: "utf8", timeout: 120000})
  if(res.status !== 0){
    throw new Error(`npm ci --prefix ${chatDir} failed (status ${res.status}):\n${res.stdout}\n${res.stderr}`)
  }
}

// ---------------------------------------------------------------------------
// phoenix.js

/**
 * A phoenix.js Socket on the given server, over `ws` (Node 20 has no global
 * WebSocket). Fast reconnect/rejoin backoffs keep the tests short; every
 * socket is disconnected when the test file ends.
 */
export function newSocket(server, opts = {}, mount = "/socket"){
  const url = typeof server === "string" ? server : `ws://127.0.0.1:${server.port}${mount}`
  const socket = new Socket(url, {
    transport: WebSocket,
    reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100,
    ...opts,
  })
  sockets.add(socket)
  return socket
}

/** Connects and resolves on the socket's open; rejects on its first error. */
export function connect(socket, ms = 5000){
  const result = new Promise((resolve, reject) => {
    const refs = [
      socket.onOpen(() => { socket.off(refs); resolve() }),
      socket.onError(err => { socket.off(refs); reject(new Error(`socket error before open: ${describeError(err)}`)) }),
    ]
  })
  socket.connect()
  return within(ms, "socket open", result)
}

function describeError(err){
  if(err && err.message){ return err.message }
  if(err && err.type){ return err.type }
  return String(err)
}

/**
 * Resolves with {status, response} for a Push (join, leave or push) once it
 * receives ok, error or timeout.
 */
export function settle(push, what = "push", ms = 8000){
  return within(ms, `a reply to ${what}`, new Promise(resolve => {
    push
      .receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => resolve({status: "timeout", response: undefined}))
  }))
}

/** Joins and resolves with the ok response; rejects on error/timeout. */
export async function joinOk(channel, ms = 5000){
  const {status, response} = await settle(channel.join(), `join ${channel.topic}`, ms)
  if(status !== "ok"){
    throw new Error(`join ${channel.topic}: expected ok, got ${status} ${JSON.stringify(response)}`)
  }
  return response
}

/** Pushes and resolves with {status, response}. */
export function pushed(channel, event, payload = {}, timeout = 5000){
  return settle(channel.push(event, payload, timeout), `${channel.topic} ${event}`, timeout + 2000)
}

/**
 * A push whose reply the test does not wait for. Its short timeout keeps the
 * push's timer from holding the test process open for the default 10 s.
 */
export function cast(channel, event, payload = {}){
  return channel.push(event, payload, 1000)
}

/** Resolves with the payload of the next `event` on the channel. */
export function nextEvent(channel, event, ms = 5000){
  let ref
  return within(ms, `event "${event}" on ${channel.topic}`, new Promise(resolve => {
    ref = channel.on(event, payload => resolve(payload))
  })).finally(() => channel.off(event, ref))
}

/** Records every payload of `event` on the channel. */
export function collect(channel, event){
  const seen = []
  channel.on(event, payload => seen.push(payload))
  return seen
}

/** Bytes of an ArrayBuffer as a plain array, for deepStrictEqual. */
export const bytes = buf => Array.from(new Uint8Array(buf))

/** POST /api/broadcast of the conformance app. */
export async function httpBroadcast(server, topic, event, payload){
  const res = await fetch(`${server.httpUrl}/api/broadcast`, {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({topic, event, payload}),
    signal: AbortSignal.timeout(5000),
  })
  return {status: res.status, body: await res.json()}
}

/** The keys of a phoenix.js Presence, sorted. */
export const presenceKeys = presence => presence.list(id => id).sort()
