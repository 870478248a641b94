/**
 * metalplane-admin: operations that act on the store directly, before (or beside) the
 * API — the counterparts of `ironic-dbsync` and of creating Ironic's first user.
 *
 *   metalplane-admin --prefix STACK dbsync [--status] [--reseal]
 *   metalplane-admin --prefix STACK site create NAME [--default] [--description TEXT]
 *   metalplane-admin --prefix STACK user create NAME --role admin|member|reader [--project P] [--password-stdin]
 *
 * AWS credentials and region come from the environment as for any AWS CLI; `--prefix`
 * is the stack name (resource names derive from it as in infra/resources.ts), or set
 * METALPLANE_INVENTORY_TABLE directly.
 */
import { randomBytes } from 'node:crypto';
import { KMSClient } from '@aws-sdk/client-kms';
import { Command, InvalidArgumentError } from 'commander';
import { commandsTable, inventoryTable, keyAlias, secretsKey, tableName } from '../infra/resources.ts';
import { documentClient } from '../lambda/adapters/dynamo/client.ts';
import { InventoryStore } from '../lambda/adapters/dynamo/inventory-store.ts';
import { LATEST_SCHEMA_VERSION, migrate, schemaState } from '../lambda/adapters/dynamo/schema-migrations.ts';
import { sealCommandSecrets, sealNodeSecrets } from '../lambda/adapters/dynamo/secret-migration.ts';
import { SiteRepository } from '../lambda/adapters/dynamo/site-repository.ts';
import { UserRepository } from '../lambda/adapters/dynamo/user-repository.ts';
import { KmsEnvelopeSealer } from '../lambda/adapters/kms/envelope-sealer.ts';
import { hashPassword, validatePassword } from '../lambda/domain/auth/passwords.ts';
import { validateSiteName } from '../lambda/domain/sites/site.ts';
import { ironicTimestamp } from '../lambda/domain/time.ts';
import { validateRole, validateUserName } from '../lambda/domain/users/user.ts';

function inventoryTableName(prefix: string | undefined): string {
  const name = prefix ? tableName(prefix, inventoryTable) : process.env[inventoryTable.envVar];
  if (!name) throw new InvalidArgumentError(`give --prefix STACK or set ${inventoryTable.envVar}`);
  return name;
}

export function adminProgram(
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Command {
  const program = new Command('metalplane-admin')
    .description('Administer a Metalplane control plane directly (schema, sites, users)')
    .option('--prefix <stack>', 'the stack name (prefix of the resource names)')
    .exitOverride();
  const table = () => inventoryTableName(program.opts<{ prefix?: string }>().prefix);

  const named = (envVar: string, fromPrefix: (prefix: string) => string) => {
    const prefix = program.opts<{ prefix?: string }>().prefix;
    const name = prefix ? fromPrefix(prefix) : process.env[envVar];
    if (!name) throw new InvalidArgumentError(`give --prefix STACK or set ${envVar}`);
    return name;
  };

  program
    .command('dbsync')
    .description(
      'apply pending schema migrations to the inventory table (like ironic-dbsync upgrade), then seal ' +
        'with KMS any secret still stored in clear in nodes and commands',
    )
    .option('--status', 'only print the current and latest schema versions')
    .option('--reseal', 'also re-seal every sealed secret under the current key (after a change of KMS key)')
    .action(async (options: { status?: boolean; reseal?: boolean }) => {
      const db = documentClient();
      if (options.status) {
        const state = await schemaState(db, table());
        out(`schema version ${state.version} (latest ${LATEST_SCHEMA_VERSION})`);
        return;
      }
      const applied = await migrate(db, table());
      out(applied.length ? `applied migrations: ${applied.join(', ')}` : 'schema is up to date');
      const key = named(secretsKey.envVar, (p) => keyAlias(p, secretsKey));
      const sealer = new KmsEnvelopeSealer(new KMSClient({ maxAttempts: 3 }), { keyId: () => key });
      const reseal = options.reseal === true ? { reseal: true } : {};
      const nodes = await sealNodeSecrets(db, table(), sealer, reseal);
      const commands = await sealCommandSecrets(
        db,
        named(commandsTable.envVar, (p) => tableName(p, commandsTable)),
        sealer,
        reseal,
      );
      out(
        `secrets ${options.reseal ? 're-sealed' : 'sealed'} with ${key}: ${nodes} nodes, ${commands} commands`,
      );
    });

  const site = program.command('site').description('sites (datacenters)');
  site
    .command('create <name>')
    .description('create a site; --default makes it the site of nodes created without conductor_group')
    .option('--default', 'make it the default site')
    .option('--description <text>')
    .action(async (name: string, options: { default?: boolean; description?: string }) => {
      const sites = new SiteRepository(new InventoryStore(documentClient(), table()));
      const now = ironicTimestamp();
      await sites.create(
        {
          name: validateSiteName(name),
          description: options.description ?? null,
          location: null,
          created_at: now,
          updated_at: null,
        },
        { makeDefault: options.default === true },
      );
      out(`site ${name} created${options.default ? ' (default)' : ''}`);
    });

  const user = program.command('user').description('API users (HTTP Basic) — create the first admin here');
  user
    .command('create <name>')
    .description('create a user; without --password-stdin a strong password is generated and printed once')
    .requiredOption('--role <role>', 'admin, member or reader')
    .option('--project <project>', "a member's project (the owner/lessee of its nodes)")
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, options: { role: string; project?: string; passwordStdin?: boolean }) => {
      const password = options.passwordStdin
        ? (await readStdin()).replace(/\r?\n$/, '')
        : randomBytes(18).toString('base64url');
      validatePassword(password);
      const { role, project } = validateRole(options.role, options.project);
      const users = new UserRepository(new InventoryStore(documentClient(), table()));
      await users.create({
        name: validateUserName(name),
        role,
        project,
        password_hash: await hashPassword(password),
        created_at: ironicTimestamp(),
        updated_at: null,
      });
      out(`user ${name} created (${role}${project ? `, project ${project}` : ''})`);
      if (!options.passwordStdin) out(`password: ${password}`);
    });

  return program;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

if (import.meta.main) {
  try {
    await adminProgram().parseAsync(process.argv);
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    if (code === undefined) process.stderr.write(`metalplane-admin: ${(error as Error).message}\n`);
    process.exit(code ?? 1);
  }
}
