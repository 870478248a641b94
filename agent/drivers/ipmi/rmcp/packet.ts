/**
 * Wire formats of IPMI over LAN (IPMI v2.0 spec §13): the RMCP header, the IPMI v1.5 and
 * v2.0 (RMCP+) session wrappers, and the IPMI request/response message inside them. Pure
 * functions over Buffers, no I/O; every decoder returns `undefined` for anything that is
 * not well formed, so a stray or hostile datagram is dropped rather than thrown on.
 *
 * Multi-byte integers in session headers and RMCP+ payloads are little-endian (§13.6).
 */

/** RMCP header (§13.1.3): version 6, reserved, sequence 0xFF (= "no RMCP ACK"), class 7 (IPMI). */
export const RMCP_HEADER = Buffer.from([0x06, 0x00, 0xff, 0x07]);

/** Authentication type / format byte (§13.6): 0x00 = v1.5 "none", 0x06 = RMCP+ (v2.0) format. */
export const AUTH_TYPE_NONE = 0x00;
export const AUTH_TYPE_RMCP_PLUS = 0x06;

/** RMCP+ payload types (§13.27.3, table 13-16). */
export const PayloadType = {
  ipmi: 0x00,
  openSessionRequest: 0x10,
  openSessionResponse: 0x11,
  rakp1: 0x12,
  rakp2: 0x13,
  rakp3: 0x14,
  rakp4: 0x15,
} as const;

/** Payload type byte flags: bit 7 = payload encrypted, bit 6 = payload authenticated. */
export const PAYLOAD_ENCRYPTED = 0x80;
export const PAYLOAD_AUTHENTICATED = 0x40;

/** Slave addresses (§13.8): the BMC is responder 0x20, a remote console is software ID 0x81. */
const BMC_ADDRESS = 0x20;
const CONSOLE_ADDRESS = 0x81;

/** Network functions and commands a power-state read needs (requests; responses are netFn | 1). */
export const NetFn = { chassis: 0x00, app: 0x06 } as const;
export const Command = {
  getChassisStatus: 0x01, // NetFn chassis (§28.2)
  getChannelAuthCapabilities: 0x38, // NetFn app (§22.13)
  closeSession: 0x3c, // NetFn app (§22.19)
} as const;

/** IPMI checksum (§13.8): the two's complement of the byte sum, so that all bytes sum to 0. */
export function checksum(bytes: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + bytes.readUInt8(i)) & 0xff;
  return (0x100 - sum) & 0xff;
}

/**
 * An IPMI request message (§13.8, LAN format): rsAddr, netFn/rsLUN, checksum of the two,
 * rqAddr, rqSeq/rqLUN, cmd, data, checksum of rqAddr..data. LUNs are 0 throughout.
 * `rqSeq` (6 bits) is how a response is matched to its request.
 */
export function encodeIpmiRequest(netFn: number, cmd: number, rqSeq: number, data: Buffer): Buffer {
  const msg = Buffer.alloc(7 + data.length);
  msg[0] = BMC_ADDRESS;
  msg[1] = netFn << 2;
  msg[2] = checksum(msg, 0, 2);
  msg[3] = CONSOLE_ADDRESS;
  msg[4] = (rqSeq & 0x3f) << 2;
  msg[5] = cmd;
  data.copy(msg, 6);
  msg[msg.length - 1] = checksum(msg, 3, msg.length - 1);
  return msg;
}

export interface IpmiResponse {
  readonly netFn: number;
  readonly rqSeq: number;
  readonly cmd: number;
  readonly completionCode: number;
  readonly data: Buffer;
}

/**
 * An IPMI response message: rqAddr, netFn/rqLUN, checksum, rsAddr, rqSeq/rsLUN, cmd,
 * completion code, data, checksum. Both checksums are verified.
 */
export function decodeIpmiResponse(msg: Buffer): IpmiResponse | undefined {
  if (msg.length < 8) return undefined;
  if (checksum(msg, 0, 2) !== msg.readUInt8(2)) return undefined;
  if (checksum(msg, 3, msg.length - 1) !== msg.readUInt8(msg.length - 1)) return undefined;
  return {
    netFn: msg.readUInt8(1) >> 2,
    rqSeq: msg.readUInt8(4) >> 2,
    cmd: msg.readUInt8(5),
    completionCode: msg.readUInt8(6),
    data: msg.subarray(7, msg.length - 1),
  };
}

/**
 * An IPMI v1.5 session packet with authentication type "none" (§13.6): the format a
 * console uses before any session exists, for Get Channel Authentication Capabilities.
 * RMCP header | auth type 0 | session sequence 0 (4) | session ID 0 (4) | length (1) | message.
 */
export function encodeV15(message: Buffer): Buffer {
  const header = Buffer.alloc(10);
  header[0] = AUTH_TYPE_NONE;
  // bytes 1-4 sequence 0 and 5-8 session ID 0: outside a session.
  header[9] = message.length;
  return Buffer.concat([RMCP_HEADER, header, message]);
}

/** The IPMI message of a v1.5 packet (auth type none or with a 16-byte AuthCode). */
export function decodeV15(packet: Buffer): Buffer | undefined {
  if (packet.length < 14 || !hasRmcpHeader(packet)) return undefined;
  const authType = packet.readUInt8(4);
  if (authType === AUTH_TYPE_RMCP_PLUS) return undefined;
  // auth type none: no AuthCode; any other v1.5 auth type carries 16 bytes of it (§13.6).
  const lengthAt = authType === AUTH_TYPE_NONE ? 13 : 29;
  if (packet.length < lengthAt + 1) return undefined;
  const length = packet.readUInt8(lengthAt);
  if (packet.length < lengthAt + 1 + length) return undefined;
  return packet.subarray(lengthAt + 1, lengthAt + 1 + length);
}

/** A parsed RMCP+ (v2.0) session packet; `authenticated` region is what the AuthCode covers. */
export interface V2Packet {
  readonly payloadType: number;
  readonly encrypted: boolean;
  readonly authenticated: boolean;
  readonly sessionId: number;
  readonly sequence: number;
  readonly payload: Buffer;
  /** Session trailer AuthCode (empty when the packet is not authenticated). */
  readonly authCode: Buffer;
  /** Bytes the AuthCode is computed over: from the auth type byte through the Next Header byte. */
  readonly signed: Buffer;
}

/**
 * RMCP+ session header (§13.6, table 13-8): auth type 0x06 | payload type (with the
 * encrypted/authenticated bits) | session ID (4, the *receiver's* ID) | session sequence
 * number (4) | payload length (2). Then the payload, then — when authenticated — the
 * session trailer: integrity pad (0xFF) so that everything from the auth type byte through
 * Next Header is a multiple of 4 bytes, pad length, Next Header (0x07), AuthCode.
 */
export function encodeV2(
  payloadType: number,
  sessionId: number,
  sequence: number,
  payload: Buffer,
  sign?: { readonly authCodeLength: number; readonly mac: (signed: Buffer) => Buffer },
): Buffer {
  const header = Buffer.alloc(12);
  header[0] = AUTH_TYPE_RMCP_PLUS;
  header[1] = payloadType;
  header.writeUInt32LE(sessionId >>> 0, 2);
  header.writeUInt32LE(sequence >>> 0, 6);
  header.writeUInt16LE(payload.length, 10);
  if (!sign) return Buffer.concat([RMCP_HEADER, header, payload]);
  // header + payload + pad + pad length + next header ≡ 0 (mod 4)
  const padLength = (4 - ((header.length + payload.length + 2) % 4)) % 4;
  const trailer = Buffer.alloc(padLength + 2, 0xff);
  trailer[padLength] = padLength;
  trailer[padLength + 1] = 0x07; // Next Header: always 07h (§13.6)
  const signed = Buffer.concat([header, payload, trailer]);
  const authCode = sign.mac(signed).subarray(0, sign.authCodeLength);
  return Buffer.concat([RMCP_HEADER, signed, authCode]);
}

/**
 * Parses an RMCP+ packet. `authCodeLength` is the negotiated integrity algorithm's AuthCode
 * size (0 before the session is active), needed to find where the payload trailer starts.
 */
export function decodeV2(packet: Buffer, authCodeLength: number): V2Packet | undefined {
  if (packet.length < 16 || !hasRmcpHeader(packet)) return undefined;
  if (packet.readUInt8(4) !== AUTH_TYPE_RMCP_PLUS) return undefined;
  const typeByte = packet.readUInt8(5);
  const payloadLength = packet.readUInt16LE(14);
  const payloadEnd = 16 + payloadLength;
  if (packet.length < payloadEnd) return undefined;
  const authenticated = (typeByte & PAYLOAD_AUTHENTICATED) !== 0;
  let authCode: Buffer = Buffer.alloc(0);
  let signed: Buffer = Buffer.alloc(0);
  if (authenticated) {
    if (authCodeLength === 0 || packet.length < payloadEnd + 2 + authCodeLength) return undefined;
    const signedEnd = packet.length - authCodeLength;
    if (packet.readUInt8(signedEnd - 1) !== 0x07) return undefined; // Next Header
    const padLength = packet.readUInt8(signedEnd - 2);
    if (payloadEnd + padLength + 2 !== signedEnd) return undefined;
    authCode = packet.subarray(signedEnd);
    signed = packet.subarray(4, signedEnd);
  }
  return {
    payloadType: typeByte & 0x3f,
    encrypted: (typeByte & PAYLOAD_ENCRYPTED) !== 0,
    authenticated,
    sessionId: packet.readUInt32LE(6),
    sequence: packet.readUInt32LE(10),
    payload: packet.subarray(16, payloadEnd),
    authCode,
    signed,
  };
}

function hasRmcpHeader(packet: Buffer): boolean {
  // Version 6 and class IPMI (bits 4:0 = 7; bit 7 would be an RMCP ACK, not ours).
  return packet.readUInt8(0) === 0x06 && (packet.readUInt8(3) & 0x9f) === 0x07;
}
