// The chat example (examples/chat) in headless Chromium against `fawkes serve`:
// two users on two pages see each other online, exchange messages, and see
// each other typing. Needs Debian's chromium at /usr/bin/chromium (or
// CHROMIUM_PATH); playwright-core only drives it, it never downloads a browser.
import {describe, it, before, after} from "node:test"
import assert from "node:assert/strict"
import {existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync} from "node:fs"
import os from "node:os"
import path from "node:path"
import {chromium} from "playwright-core"
import {startFawkes, ensureChatDeps, chatDir} from "./helpers.mjs"

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium"
const screenshots = path.resolve(import.meta.dirname || path.dirname(new URL(import.meta.url).pathname), "..", "screenshots")

// phoenix.js for the chat page (/vendor/phoenix.mjs), installed once before any timed hook
ensureChatDeps()

let server, context, profile, alice, bob
const problems = [] // console errors and uncaught exceptions of the pages

async function openChat(query, initScript){
  const page = await context.newPage()
  if(initScript){ await page.addInitScript(initScript) }
  page.on("console", msg => { if(msg.type() === "error"){ problems.push(`[${query}] console: ${msg.text()}`) } })
  page.on("pageerror", err => problems.push(`[${query}] ${err.message}`))
  await page.goto(`${server.httpUrl}/?${query}`, {timeout: 5000})
  return page
}

/** The user ids in the page's online list. */
const onlineOf = page => page.$$eval("#online li", lis => lis.map(li => li.dataset.user).sort())

describe("chat example in Chromium", () => {
  before(async () => {
    if(!existsSync(CHROMIUM)){
      throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH; the browser test needs a real browser and is never skipped")
    }
    server = await startFawkes()
    profile = mkdtempSync(path.join(os.tmpdir(), "fawkes-chromium-"))
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 10000,
      viewport: {width: 1000, height: 640},
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync",
      ],
    })
    context.setDefaultTimeout(5000)
  }, {timeout: 10000})

  after(async () => {
    if(context){ await context.close() }
    if(profile){ rmSync(profile, {recursive: true, force: true}) }
  })

  it("serves the page, its assets and the pinned phoenix.js unchanged", {timeout: 10000}, async () => {
    const page = await fetch(`${server.httpUrl}/`)
    assert.equal(page.status, 200)
    assert.match(page.headers.get("content-type"), /text\/html/)
    assert.match(await page.text(), /<title>fawkes chat<\/title>/)
    for(const asset of ["/app.js", "/style.css"]){
      const res = await fetch(`${server.httpUrl}${asset}`)
      assert.equal(res.status, 200, asset)
      assert.equal(await res.text(), readFileSync(path.join(chatDir, asset), "utf8"), asset)
    }
    const vendor = await fetch(`${server.httpUrl}/vendor/phoenix.mjs`)
    assert.equal(vendor.status, 200)
    assert.match(vendor.headers.get("content-type"), /javascript/)
    assert.equal(await vendor.text(),
      readFileSync(path.join(chatDir, "node_modules", "phoenix", "priv", "static", "phoenix.mjs"), "utf8"))
    // the chat and these tests use the same phoenix.js release
    const chatPin = JSON.parse(readFileSync(path.join(chatDir, "package.json"), "utf8")).dependencies.phoenix
    const testPin = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).devDependencies.phoenix
    assert.equal(chatPin, testPin)
  })

  it("alice and bob see each other in the online list", {timeout: 10000}, async () => {
    alice = await openChat("user=alice")
    bob = await openChat("user=bob")
    for(const page of [alice, bob]){
      await page.waitForFunction(() =>
        [...document.querySelectorAll("#online li")].map(li => li.dataset.user).sort().join() === "alice,bob")
      assert.equal(await page.textContent("#online-count"), "2")
      assert.equal(await page.getAttribute("#status", "data-state"), "online")
    }
    assert.equal(await alice.inputValue("#name"), "alice")
  })

  it("a message sent by alice appears for bob, and once for alice as her own", {timeout: 10000}, async () => {
    await alice.fill("#body", "hello from alice <b>not bold</b>")
    await alice.press("#body", "Enter")
    await bob.waitForSelector('#messages li.message[data-user="alice"]')
    assert.equal(await bob.textContent('#messages li.message[data-user="alice"] .body'), "hello from alice <b>not bold</b>")
    // her own copy is rendered locally, confirmed by the ok reply, and not echoed back
    await alice.waitForSelector("#messages li.message.mine:not(.pending)")
    assert.equal(await alice.locator("#messages li.message").count(), 1)

    await bob.fill("#body", "hi alice")
    await bob.press("#body", "Enter")
    await alice.waitForSelector('#messages li.message[data-user="bob"]')
    assert.equal(await alice.textContent('#messages li.message[data-user="bob"] .body'), "hi alice")
    assert.equal(await bob.locator("#messages li.message").count(), 2)
  })

  it("typing shows \"bob is typing…\" for alice, and the indicator expires", {timeout: 20000}, async () => {
    await bob.locator("#body").pressSequentially("still typ", {delay: 20})
    await alice.waitForFunction(() => document.querySelector("#typing").textContent === "bob is typing…")
    assert.equal(await bob.textContent("#typing"), "", "nobody is shown typing to the typist")
    mkdirSync(screenshots, {recursive: true})
    await alice.screenshot({path: path.join(screenshots, "chat.png")})
    // the page clears it about 2 s after the last typing event; the bound
    // only turns a stuck indicator into a failure
    await alice.waitForFunction(() => document.querySelector("#typing").textContent === "", null, {timeout: 15000})
  })

  it("switching rooms leaves the old room's presence and joins the new one", {timeout: 10000}, async () => {
    await alice.selectOption("#room", "rust")
    await alice.waitForFunction(() =>
      [...document.querySelectorAll("#online li")].map(li => li.dataset.user).join() === "alice")
    assert.equal(await alice.locator("#messages li.message").count(), 0, "the new room starts empty")
    await bob.waitForFunction(() =>
      [...document.querySelectorAll("#online li")].map(li => li.dataset.user).join() === "bob")
    assert.match(alice.url(), /room=rust/)

    // messages stay within their room
    await bob.fill("#body", "lobby only")
    await bob.press("#body", "Enter")
    await bob.waitForSelector("#messages li.message.mine:not(.pending) >> text=lobby only")
    await alice.selectOption("#room", "lobby")
    await bob.waitForFunction(() =>
      [...document.querySelectorAll("#online li")].map(li => li.dataset.user).sort().join() === "alice,bob")
    assert.equal(await alice.locator("#messages li.message").count(), 0)
  })

  it("closing bob's page removes him from alice's online list", {timeout: 10000}, async () => {
    await bob.close()
    await alice.waitForFunction(() =>
      [...document.querySelectorAll("#online li")].map(li => li.dataset.user).join() === "alice")
    assert.deepEqual(await onlineOf(alice), ["alice"])
  })

  it("a LongPoll user (?transport=longpoll) chats with a websocket user", {timeout: 10000}, async () => {
    const socketRequests = []
    context.on("request", req => { if(req.url().includes("/socket/")){ socketRequests.push(req.url()) } })
    const carol = await openChat("user=carol&transport=longpoll")
    for(const page of [alice, carol]){
      await page.waitForFunction(() =>
        [...document.querySelectorAll("#online li")].map(li => li.dataset.user).sort().join() === "alice,carol")
    }
    await carol.fill("#body", "hello over longpoll")
    await carol.press("#body", "Enter")
    await alice.waitForSelector('#messages li.message[data-user="carol"] >> text=hello over longpoll')
    await alice.fill("#body", "hello over websocket")
    await alice.press("#body", "Enter")
    await carol.waitForSelector('#messages li.message[data-user="alice"] >> text=hello over websocket')
    await carol.waitForSelector("#messages li.message.mine:not(.pending)")
    assert.ok(socketRequests.some(url => url.includes("/socket/longpoll")), "carol polled /socket/longpoll")
    assert.ok(!socketRequests.some(url => url.includes("/socket/websocket")), "carol never opened a websocket")
    await carol.close()
  })

  it("with websockets blocked the page falls back to LongPoll (longPollFallbackMs) and chats", {timeout: 10000}, async () => {
    const socketRequests = []
    context.on("request", req => { if(req.url().includes("/socket/longpoll")){ socketRequests.push(req.url()) } })
    // a network that refuses websocket upgrades: every WebSocket errors and closes right away
    const dave = await openChat("user=dave", () => {
      window.WebSocket = class BlockedWebSocket {
        constructor(url){
          this.url = url
          this.readyState = 0
          window.__blockedWebSockets = (window.__blockedWebSockets || 0) + 1
          setTimeout(() => {
            this.readyState = 3
            this.onerror && this.onerror(new Event("error"))
            this.onclose && this.onclose(new CloseEvent("close", {code: 1006}))
          }, 10)
        }
        send(){ throw new Error("blocked") }
        close(){ this.readyState = 3 }
      }
    })
    // (carol may still be listed: a closed LongPoll page is only dropped when its server session expires)
    for(const page of [alice, dave]){
      await page.waitForFunction(() => {
        const online = [...document.querySelectorAll("#online li")].map(li => li.dataset.user)
        return online.includes("alice") && online.includes("dave")
      })
    }
    assert.ok(await dave.evaluate(() => window.__blockedWebSockets) >= 1, "a websocket was attempted first")
    assert.ok(socketRequests.length > 0, "dave polls /socket/longpoll")
    await dave.fill("#body", "fell back")
    await dave.press("#body", "Enter")
    await alice.waitForSelector('#messages li.message[data-user="dave"] >> text=fell back')
    await dave.close()
  })

  it("no page logged an error", () => {
    assert.deepEqual(problems, [])
  })
})
