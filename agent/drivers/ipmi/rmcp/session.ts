/**
 * An IPMI v2.0 / RMCP+ ("lanplus") session, as much of it as a power-state read needs
 * (IPMI v2.0 spec §13.14–13.32, §22.13, §22.19, §28.2):
 *
 *   Get Channel Authentication Capabilities (v1.5 framing, outside any session)
 *   Open Session Request/Response           (propose the cipher suite's algorithms)
 *   RAKP 1 → RAKP 2                         (random numbers; BMC proves it knows the password)
 *   RAKP 3 → RAKP 4                         (we prove it; BMC proves the session key)
 *   Get Chassis Status                      (encrypted + integrity-protected)
 *   Close Session
 *
 * No Set Session Privilege Level: a session starts at USER level and Get Chassis Status
 * needs only USER; the requested maximum privilege (`ipmi_priv_level`) is still what RAKP
 * authenticates against, so a user without that privilege is refused as with ipmitool.
 *
 * Errors are IpmiErrors with ipmitool.ts's kinds: `auth` (RAKP status refusal, RAKP 2 code
 * or RAKP 4 check value not matching: wrong password or KG), `timeout` (silence), `failed`
 * (BMC out of sessions, non-zero completion code), `invalid` (driver_info). A BMC that does
 * not do what this client does (no IPMI 2.0, none of our cipher suites) gets an
 * RmcpUnsupportedError so the caller can fall back to ipmitool.
 */
import { randomBytes } from 'node:crypto';
import { IpmiError } from '../ipmitool.ts';
import {
  CIPHER_SUITES,
  type CipherSuite,
  decryptPayload,
  deriveKeys,
  encryptPayload,
  hmac,
  type SessionKeys,
  sameCode,
} from './crypto.ts';
import {
  Command,
  decodeIpmiResponse,
  decodeV2,
  decodeV15,
  encodeIpmiRequest,
  encodeV2,
  encodeV15,
  type IpmiResponse,
  NetFn,
  PAYLOAD_AUTHENTICATED,
  PAYLOAD_ENCRYPTED,
  PayloadType,
} from './packet.ts';
import type { Endpoint, RmcpTransport } from './transport.ts';

/** The BMC does not speak what this client speaks; ipmitool may. Kind `failed` if surfaced. */
export class RmcpUnsupportedError extends IpmiError {
  readonly unsupported = true;
  /** True when the BMC refused the proposed cipher suite (another suite may work). */
  readonly cipherRefused: boolean;
  constructor(message: string, cipherRefused = false) {
    super('failed', message);
    this.cipherRefused = cipherRefused;
  }
}

/** Privilege levels (§13.17 / §22.13): the low nibble of the RAKP 1 role byte. */
export const PRIVILEGE = { CALLBACK: 1, USER: 2, OPERATOR: 3, ADMINISTRATOR: 4 } as const;
export type PrivilegeName = keyof typeof PRIVILEGE;

/** RAKP 1 role bit 4: look the user up by name only (as ipmitool does by default). */
const NAME_ONLY_LOOKUP = 0x10;

export interface SessionParams {
  readonly endpoint: Endpoint;
  readonly username: string;
  readonly password: string;
  readonly privilege: PrivilegeName;
  readonly cipherSuite: 3 | 17;
  /** BMC key (two-key login), when the BMC has one; otherwise the password is KG. */
  readonly kg?: Buffer | undefined;
  readonly attemptTimeoutMs: number;
  readonly retries: number;
  readonly signal?: AbortSignal | undefined;
}

/** RMCP+ status codes (§13.24, table 13-15) and how each is reported. */
const STATUS: Record<number, [string, 'auth' | 'failed' | 'unsupported']> = {
  1: ['insufficient resources to create a session', 'failed'],
  2: ['invalid session ID', 'failed'],
  3: ['invalid payload type', 'unsupported'],
  4: ['invalid authentication algorithm', 'unsupported'],
  5: ['invalid integrity algorithm', 'unsupported'],
  6: ['no matching authentication payload', 'unsupported'],
  7: ['no matching integrity payload', 'unsupported'],
  8: ['inactive session ID', 'failed'],
  9: ['invalid role', 'auth'],
  10: ['unauthorized role or privilege level requested', 'auth'],
  11: ['insufficient resources to create a session at the requested role', 'failed'],
  12: ['invalid name length', 'auth'],
  13: ['unauthorized name', 'auth'],
  14: ['unauthorized GUID', 'auth'],
  15: ['invalid integrity check value', 'auth'],
  16: ['invalid confidentiality algorithm', 'unsupported'],
  17: ['no cipher suite match with proposed security algorithms', 'unsupported'],
  18: ['illegal or unrecognized parameter', 'failed'],
};

const AUTH_HINT = ' (check ipmi_username, ipmi_password, ipmi_priv_level and ipmi_cipher_suite)';

function statusError(step: string, code: number, where: string): IpmiError {
  const [text, kind] = STATUS[code] ?? [`status 0x${code.toString(16)}`, 'failed'];
  const message = `${step} refused by the BMC at ${where}: ${text}`;
  if (kind === 'unsupported') return new RmcpUnsupportedError(message, step === 'Open Session');
  return new IpmiError(kind, kind === 'auth' ? message + AUTH_HINT : message);
}

/** Console session IDs in use by this process: each must be unique per BMC, and non-zero. */
const consoleIds = new Set<number>();
function allocateConsoleId(): number {
  for (let i = 0; i < 100; i++) {
    const id = randomBytes(4).readUInt32LE(0);
    if (id !== 0 && !consoleIds.has(id)) {
      consoleIds.add(id);
      return id;
    }
  }
  throw new IpmiError('failed', 'could not allocate an RMCP+ console session ID');
}

export class RmcpSession {
  readonly #transport: RmcpTransport;
  readonly #p: SessionParams;
  readonly #suite: CipherSuite;
  readonly #where: string;
  readonly #consoleId: number; // SIDm: the BMC puts it in every packet it sends us
  #bmcId = 0; // SIDc: we put it in every packet we send
  #keys: SessionKeys | undefined;
  #sequence = 0; // outbound session sequence number, 1.. once active (§13.14)
  #rqSeq = randomBytes(1).readUInt8(0) & 0x3f;
  #closed = false;

  private constructor(transport: RmcpTransport, params: SessionParams) {
    this.#transport = transport;
    this.#p = params;
    this.#suite = CIPHER_SUITES[params.cipherSuite];
    this.#where = `${params.endpoint.address}:${params.endpoint.port}`;
    this.#consoleId = allocateConsoleId();
  }

  /** Authenticates and returns an active session; throws IpmiError otherwise. */
  static async open(transport: RmcpTransport, params: SessionParams): Promise<RmcpSession> {
    const user = Buffer.from(params.username, 'utf8');
    if (user.length > 16)
      throw new IpmiError('invalid', 'ipmi_username is longer than 16 bytes (IPMI 2.0 limit)');
    if (Buffer.byteLength(params.password, 'utf8') > 20)
      throw new IpmiError('invalid', 'ipmi_password is longer than 20 bytes (IPMI 2.0 limit)');
    const session = new RmcpSession(transport, params);
    try {
      await session.#getChannelAuthCapabilities();
      await session.#handshake(user);
      return session;
    } catch (error) {
      session.#release();
      throw error;
    }
  }

  /** Get Chassis Status: byte 1 bit 0 is "power is on" (§28.2). */
  async chassisPowerOn(): Promise<boolean> {
    const response = await this.request(
      NetFn.chassis,
      Command.getChassisStatus,
      Buffer.alloc(0),
      'Get Chassis Status',
    );
    if (response.completionCode !== 0)
      throw new IpmiError(
        'failed',
        `Get Chassis Status failed on ${this.#where}: completion code 0x${response.completionCode.toString(16)}`,
      );
    if (response.data.length < 1)
      throw new IpmiError('failed', `Get Chassis Status from ${this.#where}: empty answer`);
    return (response.data.readUInt8(0) & 0x01) === 0x01;
  }

  /**
   * Close Session (§22.19), so the BMC's small session table (a few to a few dozen slots)
   * does not fill up with sessions waiting for their inactivity timeout. One try, short:
   * a lost close only costs the BMC a slot until its own timeout.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#keys) {
        const data = Buffer.alloc(4);
        data.writeUInt32LE(this.#bmcId, 0);
        await this.request(NetFn.app, Command.closeSession, data, 'Close Session', {
          attemptTimeoutMs: Math.min(this.#p.attemptTimeoutMs, 500),
          retries: 0,
          signal: undefined,
        });
      }
    } catch {
      // best effort
    } finally {
      this.#release();
    }
  }

  /** One in-session IPMI request: encrypted with K2, signed with K1, answered in kind. */
  async request(
    netFn: number,
    cmd: number,
    data: Buffer,
    what: string,
    overrides: { attemptTimeoutMs?: number; retries?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<IpmiResponse> {
    const keys = this.#keys;
    if (!keys || this.#closed) throw new IpmiError('failed', `${what}: the session is not active`);
    const suite = this.#suite;
    const rqSeq = this.#nextRqSeq();
    const message = encodeIpmiRequest(netFn, cmd, rqSeq, data);
    const sign = {
      authCodeLength: suite.authCodeLength,
      mac: (signed: Buffer) => hmac(suite, keys.k1, signed),
    };
    return this.#transport.exchange(
      this.#p.endpoint,
      // Each (re)transmission gets a fresh sequence number and IV: a BMC may drop repeats.
      () =>
        encodeV2(
          PayloadType.ipmi | PAYLOAD_ENCRYPTED | PAYLOAD_AUTHENTICATED,
          this.#bmcId,
          this.#nextSequence(),
          encryptPayload(keys.aesKey, message),
          sign,
        ),
      (datagram) => {
        const packet = decodeV2(datagram, suite.authCodeLength);
        if (!packet || packet.payloadType !== PayloadType.ipmi || packet.sessionId !== this.#consoleId)
          return;
        // Integrity first: a packet that fails it is dropped as noise, never decrypted.
        if (!packet.authenticated) return;
        const expected = hmac(suite, keys.k1, packet.signed).subarray(0, suite.authCodeLength);
        if (!sameCode(packet.authCode, expected)) return;
        const plain = packet.encrypted ? decryptPayload(keys.aesKey, packet.payload) : packet.payload;
        const response = plain && decodeIpmiResponse(plain);
        if (!response || response.netFn !== netFn + 1 || response.cmd !== cmd || response.rqSeq !== rqSeq)
          return;
        return response;
      },
      {
        attemptTimeoutMs: overrides.attemptTimeoutMs ?? this.#p.attemptTimeoutMs,
        retries: overrides.retries ?? this.#p.retries,
        signal: 'signal' in overrides ? overrides.signal : this.#p.signal,
        what: `${what} (${this.#where})`,
      },
    );
  }

  #exchangeOptions(what: string) {
    return {
      attemptTimeoutMs: this.#p.attemptTimeoutMs,
      retries: this.#p.retries,
      signal: this.#p.signal,
      what: `${what} (${this.#where})`,
    };
  }

  /**
   * Get Channel Authentication Capabilities (§22.13), sent in v1.5 framing as ipmitool
   * does: request byte 1 = 8Eh (bit 7: "get IPMI v2.0 extended data", channel Eh = this
   * one), byte 2 = the requested privilege. Answers whether the channel does IPMI 2.0.
   */
  async #getChannelAuthCapabilities(): Promise<void> {
    const rqSeq = this.#nextRqSeq();
    const request = encodeIpmiRequest(
      NetFn.app,
      Command.getChannelAuthCapabilities,
      rqSeq,
      Buffer.from([0x8e, PRIVILEGE[this.#p.privilege]]),
    );
    const response = await this.#transport.exchange(
      this.#p.endpoint,
      () => encodeV15(request),
      (datagram) => {
        const message = decodeV15(datagram);
        const r = message && decodeIpmiResponse(message);
        if (
          !r ||
          r.netFn !== NetFn.app + 1 ||
          r.cmd !== Command.getChannelAuthCapabilities ||
          r.rqSeq !== rqSeq
        )
          return;
        return r;
      },
      this.#exchangeOptions('Get Channel Authentication Capabilities'),
    );
    // Byte 2 bit 7: extended capabilities present; byte 4 bit 1: IPMI 2.0 connections supported.
    const d = response.data;
    if (response.completionCode !== 0 || d.length < 4 || !(d.readUInt8(1) & 0x80) || !(d.readUInt8(3) & 0x02))
      throw new RmcpUnsupportedError(`the BMC at ${this.#where} does not offer IPMI 2.0 (RMCP+) sessions`);
  }

  async #handshake(user: Buffer): Promise<void> {
    const p = this.#p;
    const suite = this.#suite;
    const kuid = Buffer.from(p.password, 'utf8');
    const role = PRIVILEGE[p.privilege] | NAME_ONLY_LOOKUP;
    const tag = randomBytes(1).readUInt8(0);
    const sidm = Buffer.alloc(4);
    sidm.writeUInt32LE(this.#consoleId, 0);

    // Open Session Request (§13.17): tag, max privilege, reserved (2), SIDm (4), then one
    // 8-byte record per algorithm: payload type (0 auth, 1 integrity, 2 confidentiality),
    // reserved (2), record length 08h, algorithm number, reserved (3).
    const algorithm = (type: number, number: number) => Buffer.from([type, 0, 0, 0x08, number, 0, 0, 0]);
    const openRequest = Buffer.concat([
      Buffer.from([tag, PRIVILEGE[p.privilege], 0, 0]),
      sidm,
      algorithm(0, suite.authAlgorithm),
      algorithm(1, suite.integrityAlgorithm),
      algorithm(2, suite.confidentialityAlgorithm),
    ]);
    // Open Session Response (§13.18): tag, status, max privilege, reserved, SIDm (4), SIDc
    // (4), and the three algorithm records the BMC chose. On error it may stop after SIDm.
    const open = await this.#transport.exchange(
      p.endpoint,
      () => encodeV2(PayloadType.openSessionRequest, 0, 0, openRequest),
      (datagram) => {
        const payload = this.#prePayload(datagram, PayloadType.openSessionResponse, tag);
        if (!payload) return;
        const status = payload.readUInt8(1);
        if (status !== 0) throw statusError('Open Session', status, this.#where);
        if (payload.length < 36) return;
        if (
          payload.readUInt8(16) !== suite.authAlgorithm ||
          payload.readUInt8(24) !== suite.integrityAlgorithm ||
          payload.readUInt8(32) !== suite.confidentialityAlgorithm
        )
          throw new RmcpUnsupportedError(
            `the BMC at ${this.#where} answered with other algorithms than cipher suite ${suite.id}`,
            true,
          );
        return payload.readUInt32LE(8);
      },
      this.#exchangeOptions('Open Session'),
    );
    this.#bmcId = open;
    const sidc = Buffer.alloc(4);
    sidc.writeUInt32LE(open, 0);

    // RAKP 1 (§13.20): tag, reserved (3), SIDc, Rm (16 random bytes), role (privilege |
    // lookup bit), reserved (2), user name length, user name.
    const rm = randomBytes(16);
    const roleAndName = Buffer.concat([Buffer.from([role, 0, 0, user.length]), user]);
    const rakp1 = Buffer.concat([Buffer.from([tag, 0, 0, 0]), sidc, rm, roleAndName]);
    // What RAKP 2/3 and the SIK hash: role, user name length, user name (no reserved bytes).
    const roleLengthName = Buffer.concat([Buffer.from([role, user.length]), user]);
    // RAKP 2 (§13.21): tag, status, reserved (2), SIDm, Rc (16), GUIDc (16), key exchange
    // auth code = HMAC_Kuid(SIDm | SIDc | Rm | Rc | GUIDc | RoleM | ULengthM | UNameM).
    const rakp2 = await this.#transport.exchange(
      p.endpoint,
      () => encodeV2(PayloadType.rakp1, 0, 0, rakp1),
      (datagram) => {
        const payload = this.#prePayload(datagram, PayloadType.rakp2, tag);
        if (!payload) return;
        const status = payload.readUInt8(1);
        if (status !== 0) throw statusError('RAKP 1', status, this.#where);
        if (payload.length < 40 + suite.rakpCodeLength) return;
        return {
          rc: payload.subarray(8, 24),
          guid: payload.subarray(24, 40),
          code: payload.subarray(40, 40 + suite.rakpCodeLength),
        };
      },
      this.#exchangeOptions('RAKP 1'),
    );
    const { rc, guid } = rakp2;
    const expected2 = hmac(suite, kuid, sidm, sidc, rm, rc, guid, roleLengthName);
    if (!sameCode(rakp2.code, expected2)) {
      // Tell the BMC to drop the half-open session (RAKP 3 with an error status, §13.22).
      this.#transport.send(
        p.endpoint,
        encodeV2(PayloadType.rakp3, 0, 0, Buffer.concat([Buffer.from([tag, 0x0f, 0, 0]), sidc])),
      );
      throw new IpmiError(
        'auth',
        `the BMC at ${this.#where} refused the password (RAKP 2 auth code mismatch)${AUTH_HINT}`,
      );
    }

    const sik = hmac(suite, p.kg ?? kuid, rm, rc, roleLengthName);
    // RAKP 3 (§13.22): tag, status 0, reserved (2), SIDc, HMAC_Kuid(Rc | SIDm | RoleM | ULengthM | UNameM).
    const rakp3 = Buffer.concat([
      Buffer.from([tag, 0, 0, 0]),
      sidc,
      hmac(suite, kuid, rc, sidm, roleLengthName),
    ]);
    // RAKP 4 (§13.23): tag, status, reserved (2), SIDm, ICV = HMAC_SIK(Rm | SIDc | GUIDc) truncated.
    const icv = await this.#transport.exchange(
      p.endpoint,
      () => encodeV2(PayloadType.rakp3, 0, 0, rakp3),
      (datagram) => {
        const payload = this.#prePayload(datagram, PayloadType.rakp4, tag);
        if (!payload) return;
        const status = payload.readUInt8(1);
        if (status !== 0) throw statusError('RAKP 3', status, this.#where);
        if (payload.length < 8 + suite.rakp4IcvLength) return;
        return payload.subarray(8, 8 + suite.rakp4IcvLength);
      },
      this.#exchangeOptions('RAKP 3'),
    );
    const expected4 = hmac(suite, sik, rm, sidc, guid).subarray(0, suite.rakp4IcvLength);
    if (!sameCode(icv, expected4))
      throw new IpmiError(
        'auth',
        `the BMC at ${this.#where} sent a wrong RAKP 4 check value (BMC key KG?)${AUTH_HINT}`,
      );
    this.#keys = deriveKeys(suite, sik);
  }

  /**
   * The payload of an unauthenticated pre-session RMCP+ packet of the given type whose
   * message tag is ours and whose bytes 4-7 carry our console session ID, else undefined.
   * An error answer may be cut short after the status byte (ipmi_sim sends just tag and
   * status): that is accepted on the tag alone, as only an error can be that short.
   */
  #prePayload(datagram: Buffer, type: number, tag: number): Buffer | undefined {
    const packet = decodeV2(datagram, 0);
    if (!packet || packet.payloadType !== type || packet.authenticated || packet.encrypted) return;
    const payload = packet.payload;
    if (payload.length < 2 || payload.readUInt8(0) !== tag) return;
    if (payload.length < 8) return payload.readUInt8(1) !== 0 ? payload : undefined;
    return payload.readUInt32LE(4) === this.#consoleId ? payload : undefined;
  }

  #nextSequence(): number {
    // Wraps at 2^32 skipping 0 (0 means "unauthenticated" in the header, §13.14).
    this.#sequence = this.#sequence === 0xffffffff ? 1 : this.#sequence + 1;
    return this.#sequence;
  }

  #nextRqSeq(): number {
    this.#rqSeq = (this.#rqSeq + 1) & 0x3f;
    return this.#rqSeq;
  }

  #release(): void {
    this.#closed = true;
    consoleIds.delete(this.#consoleId);
  }
}
