import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateRamdiskAnswer, validateRamdiskRequest } from '../../protocol/ramdisk.ts';

// The shared vectors: the Go ramdisk's tests (ramdisk/internal/protocol) read the same file,
// so Ajv and the Go checker must call every message valid or invalid alike.
interface Vector {
  name: string;
  valid: boolean;
  message: unknown;
}
const vectors = JSON.parse(
  readFileSync(new URL('../../protocol/ramdisk-vectors.json', import.meta.url), 'utf8'),
) as { requests: Vector[]; answers: Vector[] };

describe('ramdisk protocol vectors', () => {
  it('cover both kinds of message, valid and invalid', () => {
    for (const list of [vectors.requests, vectors.answers]) {
      expect(list.some((v) => v.valid)).toBe(true);
      expect(list.some((v) => !v.valid)).toBe(true);
    }
  });

  it('cover every step, valid and invalid', () => {
    const steps = (v: Vector) =>
      ((v.message as { steps?: { name: string }[] }).steps ?? []).map((s) => `${s.name}:${v.valid}`);
    const seen = new Set(vectors.answers.flatMap(steps));
    for (const name of [
      'inspect',
      'erase_devices_metadata',
      'erase_devices',
      'write_image',
      'write_configdrive',
      'set_rescue_password',
      'reboot',
      'poweroff',
    ]) {
      expect(seen).toContain(`${name}:true`);
      expect(seen).toContain(`${name}:false`);
    }
  });

  it.each(vectors.requests.map((v) => [v.name, v] as const))('request: %s', (_name, v) => {
    expect(validateRamdiskRequest(v.message), JSON.stringify(validateRamdiskRequest.errors)).toBe(v.valid);
  });

  it.each(vectors.answers.map((v) => [v.name, v] as const))('answer: %s', (_name, v) => {
    expect(validateRamdiskAnswer(v.message), JSON.stringify(validateRamdiskAnswer.errors)).toBe(v.valid);
  });
});
