import { connect, isIPv6 } from 'node:net'
import { HaproxyError } from './errors.js'

/** Largest answer read from the socket; `show stat` for a few hundred servers is well under it. */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024

/** HAProxy's own rule for proxy and server names (`invalid_char()` in its sources). */
export const HAPROXY_NAME = /^[A-Za-z0-9_.:-]+$/

export type AdminState = 'ready' | 'drain' | 'maint'

/** One line of `show servers state <backend>` (format version 1), the fields the driver needs. */
export interface ServerStateRow {
  name: string
  /** `-` when HAProxy holds no address (an unresolved FQDN). */
  addr: string
  port: number
  /** `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number
  /** `srv_admin_state` bit field: 0x01|0x02|0x20 maintenance, 0x08|0x10 drain. */
  adminState: number
  /** The weight set by the config or `set server … weight` (`srv_uweight`). */
  weight: number
}

/**
 * HAProxy's cumulative counters for one server, as `show stat` prints them: they
 * only grow, until HAProxy restarts, the server is deleted and added again, or an
 * operator runs `clear counters all`.
 */
export interface ServerCounters {
  /** `stot`: streams (HTTP requests) sent to the server, one per connection attempt, retries included. */
  stot: number
  /** `wretr`: attempts on this server that failed and were retried on it. */
  wretr: number
  /** `wredis`: attempts on this server that failed and were sent to another server. */
  wredis: number
  /**
   * `hrsp_2xx` + `hrsp_3xx` + `hrsp_4xx`: response heads that are no failure.
   * (`hrsp_1xx` also holds interim `100 Continue` heads, so it is not one per request.)
   */
  ok: number
  /** `hrsp_5xx`: responses with a 5xx status. */
  hrsp5xx: number
  /** `econ`: requests that could not connect to this server once HAProxy's retries ran out (the client got a 503). */
  econ: number
  /**
   * `eresp`: response errors: no or an invalid response, a server timeout (the
   * client got a 502/504), the transfers the server aborted (`srv_abrt`); an
   * upload the server aborted is sometimes counted twice.
   */
  eresp: number
  /** `srv_abrt`: transfers the server aborted, before or after the response head. */
  srvAbrt: number
  /**
   * `hrsp_1xx` + `hrsp_other` + `cli_abrt` + `eint`: the other ways a request
   * ends (an upgrade, a malformed status, the client gave up, an internal error),
   * some counted twice (an interim 100 Continue, a client abort after the head).
   */
  otherEnds: number
}

/** One line of `show stat <backend> 4 -1` (servers only), the fields the driver needs. */
export interface ServerStatRow {
  name: string
  /** Sessions currently attached to the server. */
  scur: number
  status: string
  counters: ServerCounters
  /**
   * `qtime` + `ctime` + `rtime`: the average time from the request to the
   * response head (queue, connect, server), in ms, over the server's last 1024
   * requests that got a response (all of them while it has had fewer).
   */
  latencyMs: number
}

const ADMIN_MAINT = 0x01 | 0x02 | 0x20
const ADMIN_DRAIN = 0x08 | 0x10

export function adminStateOf(row: ServerStateRow): AdminState {
  if ((row.adminState & ADMIN_MAINT) !== 0) return 'maint'
  if ((row.adminState & ADMIN_DRAIN) !== 0) return 'drain'
  return 'ready'
}

/** `ip:port` as HAProxy's `add server` wants it (IPv6 in brackets). */
export function addressOf(ip: string, port: number): string {
  return isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`
}

/**
 * A client for HAProxy's runtime API (the `stats socket`), one command per
 * connection, the way `echo cmd | socat - unix:sock` uses it:
 *
 * 1. connect to the unix socket (refused or missing: `unreachable`);
 * 2. write the command line and `\n` (no half-close): without `prompt`, HAProxy
 *    answers that one line of commands and closes the connection;
 * 3. read until HAProxy closes it, at most MAX_ANSWER_BYTES;
 * all within `timeoutMs`.
 *
 * HAProxy answers refusals as plain text with no status, so each typed method
 * below knows what its command prints on success and treats anything else as an
 * error ("No such server.", "Permission denied", "Unknown command…").
 */
export class HaproxyRuntime {
  constructor(
    readonly socket: string,
    readonly timeoutMs: number,
  ) {}

  /** Sends one command line and returns HAProxy's whole answer. */
  command(line: string): Promise<string> {
    // `;` chains commands and `\n` ends one; names are validated before they get here.
    if (/[\n\r;]/.test(line)) {
      return Promise.reject(new HaproxyError(`refusing to send a command with ';' or a newline: ${line}`))
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      let settled = false
      const finish = (err: HaproxyError | null): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.destroy()
        if (err == null) resolve(Buffer.concat(chunks).toString('utf8'))
        else reject(err)
      }
      const timer = setTimeout(
        () =>
          finish(
            new HaproxyError(
              `HAProxy did not answer "${line}" on ${this.socket} within ${this.timeoutMs} ms`,
              {
                unreachable: true,
              },
            ),
          ),
        this.timeoutMs,
      )
      const socket = connect(this.socket)
      // Write without half-closing: HAProxy answers and then closes the connection itself.
      socket.on('connect', () => socket.write(`${line}\n`))
      socket.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_ANSWER_BYTES) {
          finish(new HaproxyError(`HAProxy's answer to "${line}" exceeds ${MAX_ANSWER_BYTES} bytes`))
          return
        }
        chunks.push(chunk)
      })
      socket.on('close', () => finish(null))
      socket.on('error', (err: NodeJS.ErrnoException) =>
        finish(
          new HaproxyError(
            `cannot reach HAProxy's runtime API at ${this.socket} (${err.code ?? err.message}); ` +
              'check that HAProxy runs and its config has `stats socket <path> level admin`',
            { unreachable: true, cause: err },
          ),
        ),
      )
    })
  }

  /** The privilege level of the socket: `user`, `operator` or `admin`. */
  async cliLevel(): Promise<string> {
    const answer = (await this.command('show cli level')).trim()
    if (!/^(user|operator|admin)$/.test(answer)) throw refused('show cli level', answer)
    return answer
  }

  async serversState(backend: string): Promise<ServerStateRow[]> {
    const line = `show servers state ${backend}`
    const answer = await this.command(line)
    const lines = answer.split('\n').filter((l) => l.trim() !== '')
    if (lines[0]?.trim() !== '1' || !lines[1]?.startsWith('# ')) {
      throw refused(line, answer, /Can't find backend/.test(answer) ? noBackendHint(backend) : '')
    }
    const columns = lines[1].slice(2).trim().split(/\s+/)
    const at = (name: string): number => {
      const index = columns.indexOf(name)
      if (index < 0) throw refused(line, answer, `no column ${name}`)
      return index
    }
    const cols = {
      name: at('srv_name'),
      addr: at('srv_addr'),
      port: at('srv_port'),
      op: at('srv_op_state'),
      admin: at('srv_admin_state'),
      weight: at('srv_uweight'),
    }
    return lines
      .slice(2)
      .filter((l) => !l.startsWith('#'))
      .map((l) => {
        const f = l.trim().split(/\s+/)
        return {
          name: f[cols.name] ?? '',
          addr: f[cols.addr] ?? '-',
          port: Number(f[cols.port]),
          opState: Number(f[cols.op]),
          adminState: Number(f[cols.admin]),
          weight: Number(f[cols.weight]),
        }
      })
  }

  async serverStats(backend: string): Promise<ServerStatRow[]> {
    const line = `show stat ${backend} 4 -1`
    const answer = await this.command(line)
    const lines = answer.split('\n').filter((l) => l.trim() !== '')
    if (!lines[0]?.startsWith('# pxname,')) {
      throw refused(line, answer, /No such proxy/.test(answer) ? noBackendHint(backend) : '')
    }
    const columns = splitCsv(lines[0].slice(2))
    const at = (column: string): number => columns.indexOf(column)
    const cols = {
      name: at('svname'),
      scur: at('scur'),
      status: at('status'),
      stot: at('stot'),
      wretr: at('wretr'),
      wredis: at('wredis'),
      ok: ['hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx'].map(at),
      hrsp5xx: at('hrsp_5xx'),
      econ: at('econ'),
      eresp: at('eresp'),
      srvAbrt: at('srv_abrt'),
      otherEnds: ['hrsp_1xx', 'hrsp_other', 'cli_abrt', 'eint'].map(at),
      times: ['qtime', 'ctime', 'rtime'].map(at),
    }
    return lines.slice(1).map((l) => {
      const f = splitCsv(l)
      // An empty or missing field (a column this HAProxy lacks) reads as 0.
      const num = (index: number): number => {
        const value = Number(f[index] ?? '')
        return Number.isFinite(value) && value > 0 ? value : 0
      }
      return {
        name: f[cols.name] ?? '',
        scur: num(cols.scur),
        status: f[cols.status] ?? '',
        counters: {
          stot: num(cols.stot),
          wretr: num(cols.wretr),
          wredis: num(cols.wredis),
          ok: cols.ok.reduce((sum, index) => sum + num(index), 0),
          hrsp5xx: num(cols.hrsp5xx),
          econ: num(cols.econ),
          eresp: num(cols.eresp),
          srvAbrt: num(cols.srvAbrt),
          otherEnds: cols.otherEnds.reduce((sum, index) => sum + num(index), 0),
        },
        latencyMs: cols.times.reduce((sum, index) => sum + num(index), 0),
      }
    })
  }

  /** `add server`: the new server starts in maintenance (admin state 0x01). */
  async addServer(backend: string, server: string, ip: string, port: number, weight: number): Promise<void> {
    await this.expect(
      `add server ${backend}/${server} ${addressOf(ip, port)} weight ${weight}`,
      /^New server registered\./,
    )
  }

  /** `set server … state`: `ready` and `drain` also lift maintenance, so no `enable server` is needed. */
  async setState(backend: string, server: string, state: AdminState): Promise<void> {
    await this.expect(`set server ${backend}/${server} state ${state}`, /^$/)
  }

  async setWeight(backend: string, server: string, weight: number): Promise<void> {
    await this.expect(`set server ${backend}/${server} weight ${weight}`, /^$/)
  }

  async setAddr(backend: string, server: string, ip: string, port: number): Promise<void> {
    await this.expect(
      `set server ${backend}/${server} addr ${ip} port ${port}`,
      /changed from|no need to change/,
    )
  }

  async shutdownSessions(backend: string, server: string): Promise<void> {
    await this.expect(`shutdown sessions server ${backend}/${server}`, /^$/)
  }

  /**
   * `del server`: true when deleted, false when HAProxy still has connections on
   * it (try again later). Only a server in maintenance can be deleted.
   */
  async delServer(backend: string, server: string): Promise<boolean> {
    const line = `del server ${backend}/${server}`
    const answer = (await this.command(line)).trim()
    if (/^Server deleted\./.test(answer)) return true
    if (/still has connections/.test(answer)) return false
    throw refused(line, answer)
  }

  private async expect(line: string, success: RegExp): Promise<string> {
    const answer = (await this.command(line)).trim()
    if (!success.test(answer)) throw refused(line, answer)
    return answer
  }
}

/** One line of HAProxy's CSV: fields with a comma or a quote come quoted, `""` inside for a quote. */
export function splitCsv(line: string): string[] {
  if (!line.includes('"')) return line.split(',')
  const fields: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quoted) {
      if (c !== '"') field += c
      else if (line[i + 1] === '"') {
        field += '"'
        i++
      } else quoted = false
    } else if (c === '"') quoted = true
    else if (c === ',') {
      fields.push(field)
      field = ''
    } else field += c
  }
  fields.push(field)
  return fields
}

function noBackendHint(backend: string): string {
  return `HAProxy has no backend named "${backend}"; add \`backend ${backend}\` to its config`
}

function refused(line: string, answer: string, hint = ''): HaproxyError {
  const text = answer.trim().split('\n')[0] || '(empty answer)'
  return new HaproxyError(hint !== '' ? `${hint} ("${line}": ${text})` : `HAProxy refused "${line}": ${text}`)
}
