// The live dashboard (/dashboard) of `fawkes serve` in headless Chromium:
// without the secret the page answers 401; with it (basic auth through the
// browser context's httpCredentials) the page joins fawkes:dashboard over
// phoenix.js and its connection count, topic list and a topic's presence
// list follow phoenix.js clients (in node) joining and leaving. Needs
// Debian's chromium at /usr/bin/chromium (or CHROMIUM_PATH).
import {describe, it, before, after} from "node:test"
import assert from "node:assert/strict"
import {existsSync, mkdirSync} from "node:fs"
import path from "node:path"
import {chromium} from "playwright-core"
import {startFawkes, newSocket, connect, joinOk} from "./helpers.mjs"

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium"
const SECRET = "dashboard-test-secret"
const screenshots = path.resolve(import.meta.dirname || path.dirname(new URL(import.meta.url).pathname), "..", "screenshots")

let server, browser, context
const problems = [] // console errors and uncaught exceptions of the page

/** The text of `selector` once the page shows it, as a number. */
const numberOf = (page, selector) => page.$eval(selector, el => Number(el.textContent))
/** The presence keys the page lists, sorted. */
const presenceKeys = page => page.$$eval("#presences tr[data-key]", rows => rows.map(r => r.dataset.key).sort().join())

describe("dashboard in Chromium", () => {
  before(async () => {
    if(!existsSync(CHROMIUM)){
      throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH; the browser test needs a real browser and is never skipped")
    }
    server = await startFawkes({env: {FAWKES_DASHBOARD_SECRET: SECRET}})
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 10000,
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync",
      ],
    })
    context = await browser.newContext({
      viewport: {width: 1280, height: 900},
      httpCredentials: {username: "admin", password: SECRET},
    })
    context.setDefaultTimeout(10000)
  }, {timeout: 15000})

  after(async () => {
    if(browser){ await browser.close() }
  })

  it("answers 401 with a basic-auth challenge without the secret", {timeout: 10000}, async () => {
    const bare = await fetch(`${server.httpUrl}/dashboard`)
    assert.equal(bare.status, 401)
    assert.equal(bare.headers.get("www-authenticate"), 'Basic realm="fawkes"')
    const wrong = await fetch(`${server.httpUrl}/dashboard`,
      {headers: {authorization: "Basic " + Buffer.from("admin:nope").toString("base64")}})
    assert.equal(wrong.status, 401)
    // a browser with wrong credentials is shown the 401 page
    const wrongUser = await browser.newContext({httpCredentials: {username: "admin", password: "nope"}})
    try {
      const page = await wrongUser.newPage()
      const response = await page.goto(`${server.httpUrl}/dashboard`, {timeout: 5000})
      assert.equal(response.status(), 401)
      assert.equal(response.headers()["www-authenticate"], 'Basic realm="fawkes"')
      assert.equal(await page.$("#status"), null, "no dashboard shown")
    } finally {
      await wrongUser.close()
    }
  })

  it("follows clients joining and leaving: connections, topics, presences", {timeout: 30000}, async () => {
    const page = await context.newPage()
    page.on("console", msg => { if(msg.type() === "error"){ problems.push(`console: ${msg.text()}`) } })
    page.on("pageerror", err => problems.push(err.message))
    const response = await page.goto(`${server.httpUrl}/dashboard`, {timeout: 5000})
    assert.equal(response.status(), 200)
    await page.waitForSelector('#status[data-state="live"]')
    // The dashboard's own socket is the only connection so far.
    await page.waitForFunction(() => document.querySelector("#conn-total").textContent === "1")
    const baseline = await numberOf(page, "#conn-total")

    const alice = newSocket(server, {params: {user: "alice"}})
    const bob = newSocket(server, {params: {user: "bob"}})
    await connect(alice)
    await connect(bob)
    const aliceRoom = alice.channel("room:dash")
    await joinOk(aliceRoom)
    await joinOk(bob.channel("room:dash"))

    await page.waitForFunction(n => document.querySelector("#conn-total").textContent === String(n), baseline + 2)
    assert.equal(await numberOf(page, "#conn-websocket"), baseline + 2)
    const row = 'tr[data-topic="room:dash"]'
    await page.waitForFunction(sel => document.querySelector(sel)?.lastChild.textContent === "2", row)
    await page.click(row)
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#presences tr[data-key]")].map(r => r.dataset.key).sort().join() === "alice,bob")
    assert.match(await page.textContent("#presences"), /fawkes/, "the node of each presence")
    mkdirSync(screenshots, {recursive: true})
    await page.screenshot({path: path.join(screenshots, "dashboard.png"), fullPage: true})

    // The search box asks the server for matching topics.
    await page.fill("#topic-search", "DASH")
    await page.waitForFunction(() => document.querySelector("#topic-total").textContent.includes("matching"))
    assert.ok(await page.$(row), "room:dash matches")
    await page.fill("#topic-search", "no-such-topic")
    await page.waitForFunction(() => document.querySelectorAll("#topics tr").length === 0)
    await page.fill("#topic-search", "")

    // alice leaves the room, then disconnects.
    aliceRoom.leave()
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#presences tr[data-key]")].map(r => r.dataset.key).join() === "bob")
    await page.waitForFunction(sel => document.querySelector(sel)?.lastChild.textContent === "1", row)
    alice.disconnect()
    await page.waitForFunction(n => document.querySelector("#conn-total").textContent === String(n), baseline + 1)
    bob.disconnect()
    await page.waitForFunction(n => document.querySelector("#conn-total").textContent === String(n), baseline)
    await page.waitForFunction(() => document.querySelectorAll("#presences tr[data-key]").length === 0)
    assert.equal(await presenceKeys(page), "")
    assert.deepEqual(problems, [])
    await page.close()
  })
})
