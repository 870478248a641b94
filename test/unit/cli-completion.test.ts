/** `metalplane completion bash|zsh`: the script is valid bash and completes commands and options. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { completionScript, completionWords } from '../../cli/commands/completion.ts';
import { cliProgram } from '../../cli/metalplane.ts';

const exec = promisify(execFile);

async function complete(...words: string[]): Promise<string[]> {
  const script = completionScript(
    cliProgram(() => {}, {}),
    'bash',
  );
  const array = words.map((word) => `'${word}'`).join(' ');
  const { stdout } = await exec('bash', [
    '-c',
    `${script}\nCOMP_WORDS=(metalplane ${array}); COMP_CWORD=${words.length}; _metalplane_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
  return stdout.split('\n').filter(Boolean);
}

describe('completion', () => {
  it('knows every command path', () => {
    const words = completionWords(cliProgram(() => {}, {}));
    expect(words.get('')).toEqual(
      expect.arrayContaining([
        ...['node', 'port', 'chassis', 'allocation', 'deploy', 'site', 'image', 'user', 'token', 'fleet'],
        '--os-cloud',
      ]),
    );
    expect(words.get('port')).toEqual(expect.arrayContaining(['group', 'list']));
    expect(words.get('port group')).toEqual(
      expect.arrayContaining(['list', 'show', 'create', 'set', 'unset', 'delete']),
    );
    expect(words.get('deploy template')).toEqual(expect.arrayContaining(['list', 'create', 'set', 'unset']));
    expect(words.get('image')).toEqual(expect.arrayContaining(['sync-status', 'list', 'show']));
    expect(words.get('image list')).toEqual(expect.arrayContaining(['--format', '--column', '--state']));
    expect(words.get('allocation create')).toEqual(expect.arrayContaining(['--wait', '--resource-class']));
    expect(words.get('node boot device')).toEqual(expect.arrayContaining(['set', 'show']));
    expect(words.get('node list')).toEqual(
      expect.arrayContaining(['--provision-state', '--format', '--column']),
    );
  });

  it('completes in bash, skipping options before the command', async () => {
    expect(await complete('')).toEqual(expect.arrayContaining(['node', 'agent', 'webhook', '--debug']));
    expect(await complete('node', 'pro')).toStrictEqual(['provide']);
    expect(await complete('--debug', 'node', 'list', '--prov')).toStrictEqual(['--provision-state']);
    expect(await complete('site', 'ag')).toStrictEqual(['agent-token']);
    expect(await complete('port', 'gr')).toStrictEqual(['group']);
    expect(await complete('port', 'group', 'li')).toStrictEqual(['list']);
    expect(await complete('deploy', 'template', 'cr')).toStrictEqual(['create']);
    expect(await complete('to')).toStrictEqual(['token']);
  });

  it('zsh goes through bashcompinit', () => {
    expect(
      completionScript(
        cliProgram(() => {}, {}),
        'zsh',
      ),
    ).toContain('bashcompinit');
  });
});
