// The desk WebSocket (/ws/agent, docs/protocol.md): reconnects with backoff; after each
// (re)connect the caller gets the snapshot and sends `resume` with the last seq it saw.

export class DeskSocket {
  /**
   * @param {object} h handlers: onMessage(msg), onStatus('connecting'|'online'|'offline'),
   *   onClosed(ev) (after a close, before the retry, with the CloseEvent; may return false to
   *   stop retrying)
   */
  constructor(h) {
    this.h = h;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.sinceAck = 0;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws/agent`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      try {
        this.ws.close(1000, 'logout');
      } catch {
        /* ignore */
      }
    }
    this.ws = null;
  }

  connect() {
    if (this.stopped) return;
    this.h.onStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.lastFrameAt = Date.now();
      clearInterval(this.pingTimer);
      // Application ping: detects a dead link faster than the TCP stack does.
      this.pingTimer = setInterval(() => {
        if (Date.now() - this.lastFrameAt > 25000) {
          try {
            ws.close(4000, 'no answer');
          } catch {
            /* ignore */
          }
          return;
        }
        this.send({ type: 'ping' });
      }, 10000);
    });
    ws.addEventListener('message', (ev) => {
      this.lastFrameAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'snapshot') {
        this.attempt = 0;
        this.h.onStatus('online');
      }
      try {
        this.h.onMessage(msg);
      } catch (e) {
        console.error('desk: handling', msg.type, e);
      }
      if (++this.sinceAck >= 200) {
        this.sinceAck = 0;
        this.send({ type: 'ack' });
      }
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      clearInterval(this.pingTimer);
      this.ws = null;
      if (this.stopped) return;
      this.h.onStatus('offline');
      Promise.resolve(this.h.onClosed ? this.h.onClosed(ev) : true).then((again) => {
        if (again !== false) this.scheduleRetry();
      });
    });
  }

  scheduleRetry() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = base / 2 + Math.random() * (base / 2);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Sends a frame when connected; returns whether it was sent. */
  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  /** Drops the connection (tests, diagnostics): the desk reconnects and resumes. */
  drop() {
    if (this.ws) this.ws.close(4001, 'dropped');
  }
}
