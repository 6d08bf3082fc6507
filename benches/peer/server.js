// The load harness's peer: the design most teams build instead of Omniroute — a Node.js server with
// pg-boss as the job queue on PostgreSQL and `ws` for the agents' sockets — speaking exactly the
// subset of Omniroute's protocol that the load harness (benches/src/load) uses, so the harness
// measures both with the same code. See README.md.
//
//   DATABASE_URL=postgres://… OMNIROUTE_BIND=127.0.0.1:0 OMNIROUTE_BOOTSTRAP_ADMIN=admin:pw node server.js
'use strict'

const http = require('node:http')
const crypto = require('node:crypto')
const { promisify } = require('node:util')
const { Pool } = require('pg')
const PgBoss = require('pg-boss')
const { WebSocketServer } = require('ws')
const { SCHEMA_SQL } = require('./schema')

const scrypt = promisify(crypto.scrypt)
const CHANNELS = new Set(['whatsapp', 'telegram'])
const POOL_SIZE = Number(process.env.PEER_POOL_SIZE || 20)
const ROUTE_WORKERS = Number(process.env.PEER_ROUTE_WORKERS || 4)
const OUTBOUND_WORKERS = Number(process.env.PEER_OUTBOUND_WORKERS || 4)
const BATCH = Number(process.env.PEER_BATCH || 10)

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: POOL_SIZE })
pool.on('error', (e) => console.error('pg pool:', e.message))
const boss = new PgBoss({ connectionString: process.env.DATABASE_URL, schema: 'peer_boss', max: 10 })
boss.on('error', (e) => console.error('pg-boss:', e.message))

// ---------------------------------------------------------------------------------------------
// Small helpers

class HttpError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

async function tx (fn) {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    client.release()
  }
}

/** pg-boss's `db` option: jobs sent inside our own transaction. */
const bossDb = (client) => ({ executeSql: (text, values) => client.query(text, values) })

function send (res, status, body) {
  const text = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function readBody (req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (c) => {
      size += c.length
      if (size > limit) {
        reject(new HttpError(413, 'payload_too_large', 'body too large'))
        req.destroy()
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function json (buf) {
  try {
    return JSON.parse(buf.toString('utf8') || '{}')
  } catch {
    throw new HttpError(400, 'invalid_json', 'the body is not JSON')
  }
}

function ctEq (a, b) {
  const x = Buffer.from(String(a))
  const y = Buffer.from(String(b))
  return x.length === y.length && crypto.timingSafeEqual(x, y)
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex')

async function hashPassword (password) {
  const salt = crypto.randomBytes(16)
  const key = await scrypt(password, salt, 32)
  return `scrypt$${salt.toString('hex')}$${key.toString('hex')}`
}

async function verifyPassword (password, stored) {
  const [kind, salt, key] = String(stored).split('$')
  if (kind !== 'scrypt') return false
  const got = await scrypt(password, Buffer.from(salt, 'hex'), 32)
  return ctEq(got.toString('hex'), key)
}

// ---------------------------------------------------------------------------------------------
// Caches: services and sessions never change under the harness once created.

const services = new Map() // id -> row
async function service (id) {
  if (!services.has(id)) {
    const { rows } = await pool.query('SELECT * FROM peer.services WHERE id = $1', [id])
    if (rows[0]) services.set(id, rows[0])
  }
  return services.get(id)
}

const sessions = new Map() // sha256(token) -> agent
async function authenticate (req) {
  const header = req.headers.authorization || ''
  const token = header.startsWith('Bearer ') ? header.slice(7) : null
  if (!token) throw new HttpError(401, 'unauthenticated', 'sign in first')
  const key = sha256(token)
  let agent = sessions.get(key)
  if (!agent) {
    const { rows } = await pool.query(
      'SELECT a.id, a.login, a.name, a.role FROM peer.sessions s JOIN peer.agents a ON a.id = s.agent_id WHERE s.token_hash = $1',
      [key])
    if (!rows[0]) throw new HttpError(401, 'unauthenticated', 'unknown session')
    agent = rows[0]
    sessions.set(key, agent)
  }
  return agent
}

function requireAdmin (agent) {
  if (agent.role !== 'admin') throw new HttpError(403, 'forbidden', 'administrators only')
}

// ---------------------------------------------------------------------------------------------
// Sockets: agent id -> set of open sockets (one process; no fan-out between instances).

const sockets = new Map()
function push (agentId, frame) {
  const set = sockets.get(agentId)
  if (!set) return
  const text = JSON.stringify(frame)
  for (const ws of set) if (ws.readyState === 1) ws.send(text)
}

function eventFrame (conv, ev) {
  return {
    type: 'event',
    conversation_id: conv.id,
    seq: ev.seq,
    kind: ev.kind,
    at: ev.at,
    agent_id: ev.agent_id,
    conversation: {
      id: conv.id,
      channel: conv.channel,
      service_id: conv.service_id,
      state: conv.state,
      agent_id: conv.agent_id,
      arrived_at: conv.arrived_at
    }
  }
}

/** Appends an event to a conversation in `client`'s transaction; answers it. */
async function appendEvent (client, conversationId, kind, agentId) {
  const { rows } = await client.query(
    `WITH c AS (UPDATE peer.conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
     INSERT INTO peer.events (conversation_id, seq, kind, agent_id, at)
     SELECT $1, last_seq, $2, $3, clock_timestamp() FROM c RETURNING seq, kind, agent_id, at`,
    [conversationId, kind, agentId])
  return rows[0]
}

const loadColumn = (channel) => {
  if (!CHANNELS.has(channel)) throw new Error(`unknown channel ${channel}`)
  return `load_${channel}`
}

// ---------------------------------------------------------------------------------------------
// Routing: a pg-boss "route" job per service that has something to route. A worker takes the
// oldest waiting conversation (FOR UPDATE SKIP LOCKED), reserves the least-busy available,
// connected agent with room in one UPDATE … RETURNING (the agent row is locked, so two workers
// cannot both fill its last slot), offers or assigns, commits, then pushes to the agent's sockets.

const workerIds = { route: [], outbound: [] }
function wake (queue) {
  for (const id of workerIds[queue]) boss.notifyWorker(id)
}

async function routeService (serviceId) {
  const svc = await service(serviceId)
  if (!svc) return
  const col = loadColumn(svc.channel)
  for (;;) {
    const done = await tx(async (client) => {
      const { rows: convs } = await client.query(
        `SELECT * FROM peer.conversations WHERE service_id = $1 AND state = 'queued'
          ORDER BY arrived_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, [serviceId])
      const conv = convs[0]
      if (!conv) return true
      const { rows: agents } = await client.query(
        `UPDATE peer.agents a SET ${col} = a.${col} + 1, last_routed_at = clock_timestamp()
          WHERE a.id = (SELECT b.id FROM peer.agents b JOIN peer.agent_services s ON s.agent_id = b.id
                         WHERE s.service_id = $1 AND b.status = 'available' AND b.connections > 0
                           AND b.${col} < b.cap_${svc.channel}
                         ORDER BY b.${col}, b.last_routed_at NULLS FIRST LIMIT 1
                         FOR UPDATE OF b SKIP LOCKED)
            AND a.status = 'available' AND a.connections > 0 AND a.${col} < a.cap_${svc.channel}
          RETURNING a.id`, [serviceId])
      if (!agents[0]) return true
      const agentId = agents[0].id
      let ev
      if (svc.offer_timeout_s) {
        const { rows } = await client.query(
          `UPDATE peer.conversations SET state = 'offered', offer_agent_id = $2,
                  offer_expires_at = now() + make_interval(secs => $3) WHERE id = $1 RETURNING *`,
          [conv.id, agentId, svc.offer_timeout_s])
        Object.assign(conv, rows[0])
        ev = await appendEvent(client, conv.id, 'offered', agentId)
        await boss.send('offer-expire', { conversation_id: conv.id, agent_id: agentId },
          { startAfter: svc.offer_timeout_s, db: bossDb(client) })
      } else {
        const { rows } = await client.query(
          "UPDATE peer.conversations SET state = 'in_service', agent_id = $2 WHERE id = $1 RETURNING *",
          [conv.id, agentId])
        Object.assign(conv, rows[0])
        ev = await appendEvent(client, conv.id, 'assigned', agentId)
      }
      return { conv, ev, agentId }
    })
    if (done === true) return
    push(done.agentId, eventFrame(done.conv, done.ev))
  }
}

/** Sends a route job for each service in `client`'s transaction (or outside one). */
async function enqueueRoutes (serviceIds, client) {
  for (const id of serviceIds) {
    await boss.send('route', { service_id: id }, client ? { db: bossDb(client) } : {})
  }
}

async function servicesOf (agentId, client = pool) {
  const { rows } = await client.query('SELECT service_id FROM peer.agent_services WHERE agent_id = $1', [agentId])
  return rows.map((r) => r.service_id)
}

async function expireOffer ({ conversation_id: convId, agent_id: agentId }) {
  const out = await tx(async (client) => {
    const { rows } = await client.query(
      `UPDATE peer.conversations SET state = 'queued', offer_agent_id = NULL, offer_expires_at = NULL
        WHERE id = $1 AND state = 'offered' AND offer_agent_id = $2 RETURNING *`, [convId, agentId])
    if (!rows[0]) return null
    await client.query(`UPDATE peer.agents SET ${loadColumn(rows[0].channel)} = ${loadColumn(rows[0].channel)} - 1 WHERE id = $1`, [agentId])
    const ev = await appendEvent(client, convId, 'offer_lapsed', agentId)
    await enqueueRoutes([rows[0].service_id], client)
    return { conv: rows[0], ev }
  })
  if (out) {
    push(agentId, eventFrame(out.conv, out.ev))
    wake('route')
  }
}

// ---------------------------------------------------------------------------------------------
// Inbound: store the customer's message (idempotent by the provider's id), open a conversation
// when none is open, enqueue its routing in the same transaction; acknowledge after COMMIT.

const DUPLICATE = new Error('duplicate')

async function ingest (svc, externalId, providerMessageId, text) {
  const out = await tx(async (client) => {
    const dup = await client.query(
      "SELECT 1 FROM peer.messages WHERE service_id = $1 AND provider_message_id = $2 AND direction = 'in'",
      [svc.id, providerMessageId])
    if (dup.rows[0]) return null
    let conv
    let opened = false
    for (;;) {
      const { rows } = await client.query(
        `SELECT * FROM peer.conversations WHERE service_id = $1 AND external_id = $2 AND state <> 'concluded'
          FOR SHARE`, [svc.id, externalId])
      if (rows[0]) { conv = rows[0]; break }
      const ins = await client.query(
        `INSERT INTO peer.conversations (service_id, channel, external_id, state, arrived_at)
         VALUES ($1, $2, $3, 'queued', clock_timestamp())
         ON CONFLICT (service_id, external_id) WHERE state <> 'concluded' DO NOTHING RETURNING *`,
        [svc.id, svc.channel, externalId])
      if (ins.rows[0]) { conv = ins.rows[0]; opened = true; break }
    }
    const { rows: msgs } = await client.query(
      `INSERT INTO peer.messages (conversation_id, service_id, direction, body, provider_message_id, status)
       VALUES ($1, $2, 'in', $3, $4, 'received')
       ON CONFLICT (service_id, provider_message_id) WHERE direction = 'in' DO NOTHING
       RETURNING id, conversation_id, direction, body, status, created_at`,
      [conv.id, svc.id, text, providerMessageId])
    // Stored meanwhile by a concurrent delivery of the same update: undo what we opened.
    if (!msgs[0]) throw DUPLICATE
    if (opened) {
      await appendEvent(client, conv.id, 'arrived', null)
      await enqueueRoutes([svc.id], client)
    }
    return { conv, message: msgs[0], opened }
  }).catch((e) => {
    if (e === DUPLICATE) return null
    throw e
  })
  if (!out) return
  if (out.opened) {
    wake('route')
    return
  }
  // After the commit: whoever holds the conversation now gets it live. An assignment committed
  // before this point is seen here; one committed after it found the message in the history.
  const { rows } = await pool.query('SELECT state, agent_id FROM peer.conversations WHERE id = $1', [out.conv.id])
  if (rows[0] && rows[0].state === 'in_service' && rows[0].agent_id) {
    push(rows[0].agent_id, { type: 'message', message: { ...out.message, kind: 'text' } })
  }
}

async function whatsappWebhook (req, res) {
  const raw = await readBody(req)
  const body = json(raw)
  const signature = String(req.headers['x-hub-signature-256'] || '')
  const items = []
  for (const entry of body.entry || []) {
    for (const change of entry.changes || []) {
      const v = change.value || {}
      const phoneId = v.metadata && v.metadata.phone_number_id
      for (const m of v.messages || []) items.push({ phoneId, m })
    }
  }
  const phoneIds = [...new Set(items.map((i) => i.phoneId))]
  const svcs = new Map()
  for (const phoneId of phoneIds) {
    const svc = [...services.values()].find((s) => s.channel === 'whatsapp' && s.provider.phone_number_id === phoneId) ||
      (await pool.query("SELECT * FROM peer.services WHERE channel = 'whatsapp' AND provider->>'phone_number_id' = $1", [phoneId])).rows[0]
    if (!svc) throw new HttpError(404, 'unknown_service', 'no WhatsApp service has this phone number id')
    services.set(svc.id, svc)
    const expected = 'sha256=' + crypto.createHmac('sha256', svc.provider.app_secret).update(raw).digest('hex')
    if (!ctEq(expected, signature)) throw new HttpError(401, 'invalid_signature', 'X-Hub-Signature-256 does not match')
    svcs.set(phoneId, svc)
  }
  for (const { phoneId, m } of items) {
    const text = m.text && m.text.body
    if (m.type !== 'text' || typeof text !== 'string') continue
    await ingest(svcs.get(phoneId), String(m.from), String(m.id), text)
  }
  send(res, 200, {})
}

async function telegramWebhook (req, res, serviceId) {
  const svc = await service(serviceId)
  if (!svc || svc.channel !== 'telegram') throw new HttpError(404, 'not_found', 'no such Telegram service')
  if (!ctEq(req.headers['x-telegram-bot-api-secret-token'] || '', svc.provider.secret_token || '')) {
    throw new HttpError(401, 'invalid_secret', 'X-Telegram-Bot-Api-Secret-Token does not match')
  }
  const body = json(await readBody(req))
  const m = body.message
  if (m && typeof m.text === 'string' && m.chat) {
    await ingest(svc, String(m.chat.id), `${m.chat.id}:${m.message_id}`, m.text)
  }
  send(res, 200, {})
}

// ---------------------------------------------------------------------------------------------
// Outbound: an "outbound" job per agent message, sent in the transaction that stored it; the
// worker calls the provider and marks the message sent (pg-boss retries failures).

async function deliver ({ message_id: messageId }) {
  const { rows } = await pool.query(
    `SELECT m.id, m.body, m.status, c.external_id, c.service_id FROM peer.messages m
       JOIN peer.conversations c ON c.id = m.conversation_id WHERE m.id = $1`, [messageId])
  const m = rows[0]
  if (!m || m.status === 'sent') return
  const svc = await service(m.service_id)
  const p = svc.provider
  let url, body
  const headers = { 'Content-Type': 'application/json' }
  if (svc.channel === 'whatsapp') {
    url = `${p.api_base_url || 'https://graph.facebook.com'}/v21.0/${p.phone_number_id}/messages`
    headers.Authorization = `Bearer ${p.access_token}`
    body = { messaging_product: 'whatsapp', recipient_type: 'individual', to: m.external_id, type: 'text', text: { body: m.body } }
  } else {
    url = `${p.api_base_url || 'https://api.telegram.org'}/bot${p.bot_token}/sendMessage`
    body = { chat_id: Number(m.external_id), text: m.body }
  }
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
  const answer = await r.json().catch(() => null)
  if (!r.ok) throw new Error(`provider answered ${r.status}`)
  const providerId = svc.channel === 'whatsapp'
    ? answer && answer.messages && answer.messages[0] && answer.messages[0].id
    : answer && answer.result && String(answer.result.message_id)
  await pool.query("UPDATE peer.messages SET status = 'sent', provider_message_id = $2 WHERE id = $1", [m.id, providerId || null])
}

// ---------------------------------------------------------------------------------------------
// REST

function conversationJson (c) {
  return {
    id: c.id,
    service_id: c.service_id,
    channel: c.channel,
    state: c.state,
    agent_id: c.agent_id,
    arrived_at: c.arrived_at,
    last_seq: c.last_seq
  }
}

async function login (req, res) {
  const b = json(await readBody(req))
  const { rows } = await pool.query('SELECT * FROM peer.agents WHERE login = $1', [String(b.login || '')])
  const a = rows[0]
  if (!a || !(await verifyPassword(String(b.password || ''), a.password_hash))) {
    throw new HttpError(401, 'invalid_credentials', 'wrong login or password')
  }
  const token = crypto.randomBytes(32).toString('base64url')
  await pool.query('INSERT INTO peer.sessions (token_hash, agent_id) VALUES ($1, $2)', [sha256(token), a.id])
  send(res, 200, { token, agent: { id: a.id, login: a.login, name: a.name, role: a.role } })
}

async function createService (req, res, me) {
  requireAdmin(me)
  const b = json(await readBody(req))
  if (!CHANNELS.has(b.channel)) throw new HttpError(400, 'invalid_channel', 'whatsapp or telegram')
  if (typeof b.name !== 'string' || !b.name) throw new HttpError(400, 'invalid_name', 'a name is required')
  const { rows } = await pool.query(
    `INSERT INTO peer.services (name, channel, provider, offer_timeout_s, auto_distribution)
     VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [b.name, b.channel, b.provider || {}, b.offer_timeout_s || null, b.auto_distribution !== false])
  services.set(rows[0].id, rows[0])
  send(res, 201, rows[0])
}

async function createAgent (req, res, me) {
  requireAdmin(me)
  const b = json(await readBody(req))
  if (typeof b.login !== 'string' || !b.login || typeof b.password !== 'string' || b.password.length < 8) {
    throw new HttpError(400, 'invalid_agent', 'login and a password of at least 8 characters')
  }
  const cap = b.capacity || {}
  const hash = await hashPassword(b.password)
  const agent = await tx(async (client) => {
    const { rows } = await client.query(
      `INSERT INTO peer.agents (login, name, role, password_hash, cap_whatsapp, cap_telegram)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (login) DO NOTHING RETURNING id, login, name, role`,
      [b.login, b.name || b.login, b.role === 'admin' ? 'admin' : 'agent', hash, cap.whatsapp ?? 1, cap.telegram ?? 1])
    if (!rows[0]) throw new HttpError(409, 'login_taken', 'this login exists')
    for (const s of b.services || []) {
      await client.query('INSERT INTO peer.agent_services (agent_id, service_id) VALUES ($1, $2)', [rows[0].id, s])
    }
    return rows[0]
  })
  send(res, 201, { ...agent, services: b.services || [], capacity: cap })
}

async function createPauseReason (req, res, me) {
  requireAdmin(me)
  const b = json(await readBody(req))
  const { rows } = await pool.query('INSERT INTO peer.pause_reasons (name) VALUES ($1) RETURNING *', [String(b.name || 'pause')])
  send(res, 201, rows[0])
}

async function setPresence (req, res, me) {
  const b = json(await readBody(req))
  if (b.status !== 'available' && b.status !== 'paused') throw new HttpError(400, 'invalid_status', 'available or paused')
  const { rows } = await pool.query(
    `UPDATE peer.agents SET status = $2, pause_reason_id = $3, status_since = clock_timestamp() WHERE id = $1
     RETURNING status, pause_reason_id, status_since AS since`,
    [me.id, b.status, b.status === 'paused' ? b.pause_reason_id || null : null])
  if (b.status === 'available') {
    await enqueueRoutes(await servicesOf(me.id))
    wake('route')
  }
  send(res, 200, rows[0])
}

async function getConversation (res, me, id) {
  const { rows } = await pool.query('SELECT * FROM peer.conversations WHERE id = $1', [id])
  const c = rows[0]
  if (!c) throw new HttpError(404, 'not_found', 'no such conversation')
  if (me.role !== 'admin' && c.agent_id !== me.id && c.offer_agent_id !== me.id) {
    const mine = await servicesOf(me.id)
    if (!mine.includes(c.service_id)) throw new HttpError(403, 'forbidden', 'not your conversation')
  }
  const { rows: messages } = await pool.query(
    `SELECT id, conversation_id, direction, 'text' AS kind, body, status, created_at FROM peer.messages
      WHERE conversation_id = $1 ORDER BY id`, [id])
  send(res, 200, { ...conversationJson(c), messages })
}

async function listConversations (res, me) {
  const { rows } = me.role === 'admin'
    ? await pool.query('SELECT * FROM peer.conversations ORDER BY arrived_at')
    : await pool.query('SELECT * FROM peer.conversations WHERE agent_id = $1 ORDER BY arrived_at', [me.id])
  send(res, 200, rows.map(conversationJson))
}

async function sendMessage (req, res, me, id) {
  const b = json(await readBody(req))
  if (typeof b.text !== 'string' || !b.text) throw new HttpError(400, 'empty_message', 'text is required')
  const key = req.headers['idempotency-key'] ? String(req.headers['idempotency-key']) : null
  const message = await tx(async (client) => {
    const { rows } = await client.query('SELECT * FROM peer.conversations WHERE id = $1 FOR SHARE', [id])
    const c = rows[0]
    if (!c) throw new HttpError(404, 'not_found', 'no such conversation')
    if (c.state !== 'in_service' || c.agent_id !== me.id) throw new HttpError(409, 'not_yours', 'you do not hold this conversation')
    const ins = await client.query(
      `INSERT INTO peer.messages (conversation_id, service_id, direction, body, status, idempotency_key, agent_id)
       VALUES ($1, $2, 'out', $3, 'pending', $4, $5)
       ON CONFLICT (agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING id, conversation_id, direction, body, status, created_at`, [id, c.service_id, b.text, key, me.id])
    if (!ins.rows[0]) {
      const again = await client.query(
        'SELECT id, conversation_id, direction, body, status, created_at FROM peer.messages WHERE agent_id = $1 AND idempotency_key = $2',
        [me.id, key])
      return again.rows[0]
    }
    await boss.send('outbound', { message_id: ins.rows[0].id }, { retryLimit: 10, retryDelay: 1, retryBackoff: true, db: bossDb(client) })
    return ins.rows[0]
  })
  wake('outbound')
  send(res, 201, { ...message, kind: 'text' })
}

async function conclude (res, me, id) {
  const out = await tx(async (client) => {
    const { rows } = await client.query(
      `UPDATE peer.conversations SET state = 'concluded', concluded_at = clock_timestamp()
        WHERE id = $1 AND state = 'in_service' AND agent_id = $2 RETURNING *`, [id, me.id])
    const c = rows[0]
    if (!c) throw new HttpError(409, 'not_yours', 'you do not hold this conversation')
    const col = loadColumn(c.channel)
    await client.query(`UPDATE peer.agents SET ${col} = ${col} - 1 WHERE id = $1`, [me.id])
    const ev = await appendEvent(client, c.id, 'concluded', me.id)
    await enqueueRoutes(await servicesOf(me.id, client), client)
    return { c, ev }
  })
  wake('route')
  push(me.id, eventFrame(out.c, out.ev))
  send(res, 200, conversationJson(out.c))
}

async function monitorAgents (res, me) {
  requireAdmin(me)
  const { rows } = await pool.query(
    `SELECT a.id, a.login, a.name, a.status, a.connections,
            count(c.id) FILTER (WHERE c.state = 'in_service' AND c.agent_id = a.id AND c.channel = 'whatsapp') AS wa,
            count(c.id) FILTER (WHERE c.state = 'in_service' AND c.agent_id = a.id AND c.channel = 'telegram') AS tg,
            count(c.id) FILTER (WHERE c.state = 'offered' AND c.offer_agent_id = a.id) AS offers
       FROM peer.agents a
       LEFT JOIN peer.conversations c ON c.state IN ('in_service', 'offered') AND (c.agent_id = a.id OR c.offer_agent_id = a.id)
      WHERE a.role = 'agent' GROUP BY a.id`)
  send(res, 200, rows.map((r) => ({
    id: r.id,
    login: r.login,
    name: r.name,
    status: r.status,
    connections: r.connections,
    offers: Number(r.offers),
    conversations: { whatsapp: { active: Number(r.wa) }, telegram: { active: Number(r.tg) } }
  })))
}

async function monitorQueues (res, me) {
  requireAdmin(me)
  const { rows } = await pool.query(
    `SELECT s.id AS service_id, s.channel, count(c.id) AS waiting,
            coalesce(extract(epoch FROM now() - min(c.arrived_at)), 0) AS oldest_wait_s
       FROM peer.services s LEFT JOIN peer.conversations c ON c.service_id = s.id AND c.state = 'queued'
      GROUP BY s.id`)
  send(res, 200, rows.map((r) => ({
    service_id: r.service_id,
    channel: r.channel,
    waiting: Number(r.waiting),
    inactive: 0,
    oldest_wait_s: Number(r.oldest_wait_s)
  })))
}

const UUID = '([0-9a-f-]{36})'
const routes = [
  ['GET', /^\/healthz$/, async (req, res) => send(res, 200, { status: 'ok' }), false],
  ['POST', /^\/api\/v1\/auth\/login$/, login, false],
  ['POST', /^\/webhooks\/whatsapp$/, whatsappWebhook, false],
  ['POST', new RegExp(`^/webhooks/telegram/${UUID}$`), (req, res, id) => telegramWebhook(req, res, id), false],
  ['POST', /^\/api\/v1\/admin\/services$/, createService, true],
  ['POST', /^\/api\/v1\/admin\/agents$/, createAgent, true],
  ['POST', /^\/api\/v1\/admin\/pause-reasons$/, createPauseReason, true],
  ['PUT', /^\/api\/v1\/me\/presence$/, setPresence, true],
  ['GET', /^\/api\/v1\/monitor\/agents$/, (req, res, me) => monitorAgents(res, me), true],
  ['GET', /^\/api\/v1\/monitor\/queues$/, (req, res, me) => monitorQueues(res, me), true],
  ['GET', /^\/api\/v1\/conversations$/, (req, res, me) => listConversations(res, me), true],
  ['GET', new RegExp(`^/api/v1/conversations/${UUID}$`), (req, res, me, id) => getConversation(res, me, id), true],
  ['POST', new RegExp(`^/api/v1/conversations/${UUID}/messages$`), sendMessage, true],
  ['POST', new RegExp(`^/api/v1/conversations/${UUID}/conclude$`), (req, res, me, id) => conclude(res, me, id), true]
]

async function handle (req, res) {
  const path = req.url.split('?')[0]
  try {
    for (const [method, re, fn, auth] of routes) {
      const m = re.exec(path)
      if (!m || req.method !== method) continue
      if (auth) {
        const me = await authenticate(req)
        return await fn(req, res, me, ...m.slice(1))
      }
      return await fn(req, res, ...m.slice(1))
    }
    throw new HttpError(404, 'not_found', `no route ${req.method} ${path}`)
  } catch (e) {
    if (e instanceof HttpError) return send(res, e.status, { error: e.code, message: e.message })
    if (e.code === '22P02') return send(res, 400, { error: 'invalid_id', message: e.message })
    if (e.code === '23503') return send(res, 400, { error: 'unknown_reference', message: e.message })
    console.error(`${req.method} ${path}:`, e)
    const down = e.code === 'ECONNREFUSED' || e.code === '57P01'
    send(res, 503, { error: down ? 'unavailable' : 'internal', message: 'try again' })
  }
}

// ---------------------------------------------------------------------------------------------
// /ws/agent

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })

async function onUpgrade (req, socket, head) {
  if (req.url.split('?')[0] !== '/ws/agent') return socket.destroy()
  let me
  try {
    me = await authenticate(req)
  } catch {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n')
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, me).catch((e) => {
    console.error('ws:', e.message)
    ws.close(1011)
  }))
}

async function onConnection (ws, me) {
  let set = sockets.get(me.id)
  if (!set) sockets.set(me.id, (set = new Set()))
  set.add(ws)
  let closed = false
  ws.on('close', () => {
    closed = true
    set.delete(ws)
    pool.query('UPDATE peer.agents SET connections = greatest(connections - 1, 0) WHERE id = $1', [me.id])
      .catch((e) => console.error('disconnect:', e.message))
  })
  ws.on('message', (data) => onFrame(ws, me, data).catch((e) => {
    console.error('frame:', e.message)
    ws.send(JSON.stringify({ type: 'error', error: 'internal', message: 'try again' }))
  }))
  const { rows } = await pool.query(
    `UPDATE peer.agents SET connections = connections + 1 WHERE id = $1
     RETURNING status, pause_reason_id, status_since AS since`, [me.id])
  if (closed) return
  const { rows: convs } = await pool.query(
    "SELECT * FROM peer.conversations WHERE agent_id = $1 AND state = 'in_service'", [me.id])
  const { rows: offers } = await pool.query(
    "SELECT id, channel, service_id, offer_expires_at FROM peer.conversations WHERE offer_agent_id = $1 AND state = 'offered'", [me.id])
  ws.send(JSON.stringify({
    type: 'snapshot',
    agent: me,
    presence: rows[0],
    conversations: convs.map(conversationJson),
    offers: offers.map((o) => ({ conversation_id: o.id, channel: o.channel, service_id: o.service_id, expires_at: o.offer_expires_at })),
    queues: []
  }))
  if (rows[0] && rows[0].status === 'available') {
    await enqueueRoutes(await servicesOf(me.id))
    wake('route')
  }
}

async function onFrame (ws, me, data) {
  let f
  try {
    f = JSON.parse(data.toString('utf8'))
  } catch {
    return ws.send(JSON.stringify({ type: 'error', error: 'invalid_message', message: 'not JSON' }))
  }
  if (f.type === 'ping') return ws.send('{"type":"pong"}')
  if (f.type === 'accept') {
    const out = await tx(async (client) => {
      const { rows } = await client.query(
        `UPDATE peer.conversations SET state = 'in_service', agent_id = offer_agent_id, offer_agent_id = NULL, offer_expires_at = NULL
          WHERE id = $1 AND state = 'offered' AND offer_agent_id = $2 RETURNING *`, [f.conversation_id, me.id])
      if (!rows[0]) return null
      return { conv: rows[0], ev: await appendEvent(client, rows[0].id, 'offer_accepted', me.id) }
    })
    if (!out) return ws.send(JSON.stringify({ type: 'error', ref: f.ref, error: 'offer_gone', message: 'the offer is gone' }))
    ws.send(JSON.stringify({ type: 'ack', ref: f.ref }))
    push(me.id, eventFrame(out.conv, out.ev))
    return
  }
  if (f.type === 'resume' && f.conversations && typeof f.conversations === 'object') {
    for (const [convId, lastSeq] of Object.entries(f.conversations)) {
      const { rows } = await pool.query(
        `SELECT seq, kind, agent_id, at FROM peer.events WHERE conversation_id = $1 AND seq > $2
          AND EXISTS (SELECT 1 FROM peer.events e WHERE e.conversation_id = $1 AND e.agent_id = $3) ORDER BY seq`,
        [convId, Number(lastSeq) || 0, me.id])
      ws.send(JSON.stringify({ type: 'gap', conversation_id: convId, events: rows }))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Start

async function bootstrapAdmin () {
  const spec = process.env.OMNIROUTE_BOOTSTRAP_ADMIN
  if (!spec || !spec.includes(':')) return
  const i = spec.indexOf(':')
  const [loginName, password] = [spec.slice(0, i), spec.slice(i + 1)]
  const { rows } = await pool.query('SELECT 1 FROM peer.agents WHERE login = $1', [loginName])
  if (rows[0]) return
  await pool.query(
    "INSERT INTO peer.agents (login, name, role, password_hash) VALUES ($1, $1, 'admin', $2) ON CONFLICT (login) DO NOTHING",
    [loginName, await hashPassword(password)])
}

async function main () {
  if (!process.env.DATABASE_URL) throw new Error('DATABASE_URL is required')
  await pool.query(SCHEMA_SQL)
  await bootstrapAdmin()
  await boss.start()
  for (const q of ['route', 'outbound', 'offer-expire']) await boss.createQueue(q)
  const poll = { pollingIntervalSeconds: 0.5, batchSize: BATCH }
  for (let i = 0; i < ROUTE_WORKERS; i++) {
    workerIds.route.push(await boss.work('route', poll, async (jobs) => {
      for (const id of new Set(jobs.map((j) => j.data.service_id))) await routeService(id)
    }))
  }
  for (let i = 0; i < OUTBOUND_WORKERS; i++) {
    workerIds.outbound.push(await boss.work('outbound', poll, async (jobs) => {
      await Promise.all(jobs.map((j) => deliver(j.data)))
    }))
  }
  await boss.work('offer-expire', poll, async (jobs) => {
    for (const j of jobs) await expireOffer(j.data)
  })
  // The sweeper: a route job was skipped (row locked by an inbound message) or raced an agent
  // freeing up; every second, services with waiting conversations get one more route job.
  setInterval(() => {
    pool.query("SELECT DISTINCT service_id FROM peer.conversations WHERE state = 'queued'")
      .then(async ({ rows }) => {
        for (const r of rows) await boss.send('route', { service_id: r.service_id }, { singletonKey: `sweep-${r.service_id}`, singletonSeconds: 1 })
        if (rows.length) wake('route')
      })
      .catch((e) => console.error('sweeper:', e.message))
  }, 1000).unref()

  if (process.env.PEER_DEBUG) {
    let last = Date.now()
    setInterval(() => {
      const now = Date.now()
      if (now - last > 300 || pool.waitingCount > 0) {
        console.error(`debug: event loop lag ${now - last - 100} ms, pool waiting ${pool.waitingCount}, total ${pool.totalCount}, idle ${pool.idleCount}`)
      }
      last = now
    }, 100).unref()
  }
  const server = http.createServer((req, res) => { handle(req, res) })
  server.on('upgrade', (req, socket, head) => { onUpgrade(req, socket, head) })
  const bind = process.env.OMNIROUTE_BIND || '127.0.0.1:8080'
  const i = bind.lastIndexOf(':')
  server.listen(Number(bind.slice(i + 1)), bind.slice(0, i), () => {
    const a = server.address()
    console.log(`serving at http://${a.address}:${a.port}`)
  })
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
