// What a Phoenix node does on Redis, without a Phoenix node: a binary-safe
// RESP client over `net` (PUBLISH, SUBSCRIBE, PUBSUB NUMSUB) and a decoder
// for the Erlang term format subset phoenix_pubsub_redis messages use, so a
// test can replay the bytes Phoenix published and read what fawkes publishes.
// It is written from the term format's documentation, independently of the
// Rust decoder it checks.
import net from "node:net"
import {inflateSync} from "node:zlib"

// ---------------------------------------------------------------------------
// RESP

/** Parses one RESP2 value of `buf` at `at`: {value, end}, or null when incomplete. */
function parse(buf, at){
  const eol = buf.indexOf("\r\n", at)
  if(eol < 0){ return null }
  const type = String.fromCharCode(buf[at])
  const line = buf.toString("latin1", at + 1, eol)
  switch(type){
    case "+": return {value: line, end: eol + 2}
    case "-": return {value: new Error(line), end: eol + 2}
    case ":": return {value: Number(line), end: eol + 2}
    case "$": {
      const len = Number(line)
      if(len < 0){ return {value: null, end: eol + 2} }
      if(buf.length < eol + 2 + len + 2){ return null }
      return {value: buf.subarray(eol + 2, eol + 2 + len), end: eol + 2 + len + 2}
    }
    case "*": {
      const n = Number(line)
      const items = []
      let end = eol + 2
      for(let i = 0; i < n; i++){
        const item = parse(buf, end)
        if(!item){ return null }
        items.push(item.value)
        end = item.end
      }
      return {value: items, end}
    }
    default: throw new Error(`not RESP: ${JSON.stringify(type)}`)
  }
}

/** One Redis connection: commands in order, and pub/sub messages to `onMessage`. */
export class Resp {
  static connect(port){
    return new Promise((resolve, reject) => {
      const sock = net.connect({port, host: "127.0.0.1"})
      sock.once("connect", () => resolve(new Resp(sock)))
      sock.once("error", reject)
    })
  }

  constructor(sock){
    this.sock = sock
    this.buf = Buffer.alloc(0)
    this.pending = []
    this.onMessage = null
    sock.on("data", chunk => {
      this.buf = Buffer.concat([this.buf, chunk])
      for(;;){
        const item = parse(this.buf, 0)
        if(!item){ break }
        this.buf = this.buf.subarray(item.end)
        this.dispatch(item.value)
      }
    })
  }

  dispatch(value){
    if(Array.isArray(value) && Buffer.isBuffer(value[0]) && value[0].toString() === "message" && this.onMessage){
      this.onMessage(value[1].toString(), value[2])
      return
    }
    const waiter = this.pending.shift()
    if(waiter){ waiter(value) }
  }

  /** Sends a command (strings or Buffers, binary-safe) and resolves with its reply. */
  command(...args){
    const parts = [Buffer.from(`*${args.length}\r\n`)]
    for(const arg of args){
      const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg))
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"))
    }
    return new Promise(resolve => {
      this.pending.push(resolve)
      this.sock.write(Buffer.concat(parts))
    })
  }

  close(){ this.sock.destroy() }
}

// ---------------------------------------------------------------------------
// Erlang term format

/** An atom (kept apart from strings). */
export class Atom {
  constructor(name){ this.name = name }
}

/** A float (kept apart from integers: 0.0 is not 0 in Erlang). */
export class Float {
  constructor(value){ this.value = value }
}

/** A tuple. */
export class Tuple {
  constructor(items){ this.items = items }
}

/** Decodes a whole term (version byte 131, optionally compressed, tag 80). */
export function decodeTerm(bytes){
  if(bytes[0] !== 131){ throw new Error(`version byte ${bytes[0]}, not 131`) }
  let body = bytes.subarray(1)
  let compressed = false
  if(body[0] === 80){
    const size = body.readUInt32BE(1)
    body = inflateSync(body.subarray(5))
    if(body.length !== size){ throw new Error(`inflated ${body.length} bytes, header says ${size}`) }
    compressed = true
  }
  const {value, end} = term(body, 0)
  if(end !== body.length){ throw new Error(`${body.length - end} bytes after the term`) }
  return {term: value, compressed, body: Buffer.concat([Buffer.from([131]), body])}
}

function term(b, at){
  const tag = b[at]
  const p = at + 1
  switch(tag){
    case 97: return {value: b[p], end: p + 1}
    case 98: return {value: b.readInt32BE(p), end: p + 4}
    case 70: return {value: new Float(b.readDoubleBE(p)), end: p + 8}
    case 110: case 111: {
      const n = tag === 110 ? b[p] : b.readUInt32BE(p)
      const start = p + (tag === 110 ? 1 : 4)
      const sign = b[start]
      let value = 0n
      for(let i = n - 1; i >= 0; i--){ value = (value << 8n) | BigInt(b[start + 1 + i]) }
      return {value: sign ? -value : value, end: start + 1 + n}
    }
    case 100: case 118: {
      const n = b.readUInt16BE(p)
      const text = b.toString(tag === 100 ? "latin1" : "utf8", p + 2, p + 2 + n)
      return {value: new Atom(text), end: p + 2 + n}
    }
    case 115: case 119: {
      const n = b[p]
      const text = b.toString(tag === 115 ? "latin1" : "utf8", p + 1, p + 1 + n)
      return {value: new Atom(text), end: p + 1 + n}
    }
    case 109: {
      const n = b.readUInt32BE(p)
      return {value: Buffer.from(b.subarray(p + 4, p + 4 + n)), end: p + 4 + n}
    }
    case 104: case 105: {
      const n = tag === 104 ? b[p] : b.readUInt32BE(p)
      let end = p + (tag === 104 ? 1 : 4)
      const items = []
      for(let i = 0; i < n; i++){ const t = term(b, end); items.push(t.value); end = t.end }
      return {value: new Tuple(items), end}
    }
    case 116: {
      const n = b.readUInt32BE(p)
      let end = p + 4
      const pairs = []
      for(let i = 0; i < n; i++){
        const k = term(b, end)
        const v = term(b, k.end)
        pairs.push([k.value, v.value])
        end = v.end
      }
      return {value: new Map(pairs), end}
    }
    case 106: return {value: [], end: p}
    case 107: {
      const n = b.readUInt16BE(p)
      return {value: Array.from(b.subarray(p + 2, p + 2 + n)), end: p + 2 + n}
    }
    case 108: {
      const n = b.readUInt32BE(p)
      let end = p + 4
      const items = []
      for(let i = 0; i < n; i++){ const t = term(b, end); items.push(t.value); end = t.end }
      const tail = term(b, end)
      if(!(Array.isArray(tail.value) && tail.value.length === 0)){ throw new Error("improper list") }
      return {value: items, end: tail.end}
    }
    default: throw new Error(`tag ${tag} at ${at} is not used by phoenix_pubsub_redis broadcasts`)
  }
}

/** A decoded map's value for the atom key `name`. */
export function field(map, name){
  for(const [k, v] of map){ if(k instanceof Atom && k.name === name){ return v } }
  return undefined
}

/**
 * Reads a `{3, mode, node, topic, %Phoenix.Socket.Broadcast{}, dispatcher}`
 * message into plain values (binaries as UTF-8 strings, atoms as {atom}).
 */
export function readMessage(bytes){
  const {term: t, compressed, body} = decodeTerm(bytes)
  if(!(t instanceof Tuple) || t.items.length !== 6){ throw new Error("not a 6-tuple") }
  const [version, mode, node, topic, message, dispatcher] = t.items
  return {
    version,
    mode: mode instanceof Atom ? {atom: mode.name} : mode,
    node: node instanceof Atom ? {atom: node.name} : node,
    topic: topic.toString("utf8"),
    struct: field(message, "__struct__")?.name,
    structKeys: [...message.keys()].map(k => k.name),
    event: field(message, "event").toString("utf8"),
    broadcastTopic: field(message, "topic").toString("utf8"),
    payload: field(message, "payload"),
    dispatcher: dispatcher instanceof Atom ? {atom: dispatcher.name} : dispatcher,
    compressed,
    body,
  }
}

/**
 * A payload term as the JSON text Jason would write for it (integers with
 * every digit, floats with a point or exponent, atoms nil/true/false).
 */
export function jsonText(t){
  if(t instanceof Map){
    return "{" + [...t].map(([k, v]) => JSON.stringify(k instanceof Atom ? k.name : k.toString("utf8")) + ":" + jsonText(v)).join(",") + "}"
  }
  if(Array.isArray(t)){ return "[" + t.map(jsonText).join(",") + "]" }
  if(Buffer.isBuffer(t)){ return JSON.stringify(t.toString("utf8")) }
  if(t instanceof Float){
    const text = String(t.value)
    return /[.e]/.test(text) ? text : text + ".0"
  }
  if(t instanceof Atom){
    return {nil: "null", true: "true", false: "false"}[t.name] ?? JSON.stringify(t.name)
  }
  if(typeof t === "number" || typeof t === "bigint"){ return String(t) }
  throw new Error(`no JSON form: ${t}`)
}

/** An ATOM_EXT (as OTP 25 writes atoms). */
export const atomExt = name => Buffer.concat([Buffer.from([100, 0, name.length]), Buffer.from(name, "latin1")])

/** A BINARY_EXT. */
export function binaryExt(text){
  const bytes = Buffer.from(text, "utf8")
  const head = Buffer.alloc(5)
  head[0] = 109
  head.writeUInt32BE(bytes.length, 1)
  return Buffer.concat([head, bytes])
}

/**
 * `{3, :except, :<node>, topic, %Broadcast{event, payload, topic}, Phoenix.Channel.Server}`
 * with `payloadExt` (encoded term bytes) as the payload.
 */
export function broadcastMessage(node, topic, event, payloadExt){
  return Buffer.concat([
    Buffer.from([131, 104, 6, 97, 3]), atomExt("except"), atomExt(node), binaryExt(topic),
    Buffer.from([116, 0, 0, 0, 4]),
    atomExt("__struct__"), atomExt("Elixir.Phoenix.Socket.Broadcast"),
    atomExt("event"), binaryExt(event),
    atomExt("payload"), payloadExt,
    atomExt("topic"), binaryExt(topic),
    atomExt("Elixir.Phoenix.Channel.Server"),
  ])
}

/** Replaces the node-name atom `from` with `to` in an uncompressed message. */
export function renameNode(bytes, from, to){
  const old = atomExt(from)
  const at = bytes.indexOf(old)
  if(at !== 5 + atomExt("except").length && at !== 5 + atomExt("only").length){
    throw new Error(`node atom ${from} not where a message keeps it (${at})`)
  }
  return Buffer.concat([bytes.subarray(0, at), atomExt(to), bytes.subarray(at + old.length)])
}
