/**
 * Who may use the API (Metalplane's own resources, routes in lambda/api/routes/users.ts):
 * users with a role, and their bearer tokens (`mpt_...`), whose secret is shown once, by
 * `token create`.
 */
import { type Command, Option } from 'commander';
import { UsageError } from '../os-config.ts';
import type { OutputOptions } from '../output.ts';
import {
  type Context,
  deleteEach,
  listAll,
  type Options,
  pagingParams,
  positiveInt,
  printList,
  printOne,
  query,
  type Row,
  readStdin,
  segment,
  withOutput,
  without,
} from './context.ts';

const ROLES = ['admin', 'member', 'reader'];
const USER_FIELDS = ['name', 'role', 'project', 'created_at', 'updated_at'];
const TOKEN_FIELDS = ['id', 'description', 'created_at', 'expires_at', 'revoked'];

const userPath = (name: string) => `/v1/users/${segment(name)}`;
const tokensPath = (user: string) => `${userPath(user)}/tokens`;

/** `--password P` or `--password-stdin` (kept out of the process list and shell history). */
const withPassword = (command: Command) =>
  command
    .option('--password <password>', 'the password (visible to other local users: prefer --password-stdin)')
    .addOption(new Option('--password-stdin', 'read the password from standard input').conflicts('password'));

async function passwordOf(options: Options): Promise<string | undefined> {
  if (options.passwordStdin) return (await readStdin()).replace(/\r?\n$/, '');
  return options.password as string | undefined;
}

/** A project given, or none when the role becomes one without a project (only members have one). */
function projectOf(options: Options): string | null | undefined {
  if (options.project !== undefined) return options.project as string;
  return options.role !== undefined && options.role !== 'member' ? null : undefined;
}

/** The fields of a create or update body that were given. */
async function userBody(options: Options): Promise<Row> {
  const password = await passwordOf(options);
  const project = projectOf(options);
  return {
    ...(options.role !== undefined ? { role: options.role } : {}),
    ...(project !== undefined ? { project } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}

const roleOption = () => new Option('--role <role>', 'admin, member or reader').choices(ROLES);

export function registerAccessCommands(program: Command, context: Context): void {
  registerUsers(program, context);
  registerTokens(program, context);
}

function registerUsers(program: Command, context: Context): void {
  const user = program.command('user').description('API users (HTTP Basic) and their roles');
  withOutput(
    user
      .command('list')
      .description('list users')
      .option('--limit <n>', 'at most this many users (0: all)', positiveInt)
      .option('--marker <name>', 'start after this user'),
  ).action(async (options: Options) => {
    const path = `/v1/users${query(pagingParams(options))}`;
    const users = await listAll(await context.client(), path, 'users', options.limit as number | undefined);
    await printList(context, USER_FIELDS, users, options);
  });
  withOutput(user.command('show <user>').description('show a user (and, to an admin, its lockout)')).action(
    async (name: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', userPath(name))).body as Row;
      await printOne(context, without(shown, ['links']), options);
    },
  );
  withOutput(
    withPassword(
      user
        .command('create <name>')
        .description('create a user')
        .addOption(roleOption().makeOptionMandatory())
        .option('--project <project>', "a member's project (the nodes it owns or leases)"),
    ),
  ).action(async (name: string, options: Options) => {
    const body = await userBody(options);
    if (body.password === undefined) throw new UsageError('give --password or --password-stdin');
    const created = (await (await context.client()).request('POST', '/v1/users', { name, ...body })).body;
    await printOne(context, without(created as Row, ['links']), options);
  });
  withPassword(
    user
      .command('set <user>')
      .description("change a user's password, role or project")
      .addOption(roleOption())
      .option('--project <project>', "a member's project"),
  ).action(async (name: string, options: Options) => {
    const body = await userBody(options);
    if (Object.keys(body).length === 0) throw new UsageError('nothing to set: give at least one option');
    await (await context.client()).request('PATCH', userPath(name), body);
  });
  user
    .command('unlock <user>')
    .description("clear a user's failed-login lockout")
    .action(async (name: string) => {
      await (await context.client()).request('DELETE', `${userPath(name)}/lockout`);
    });
  user
    .command('delete <user...>')
    .description('delete users (and with them their tokens)')
    .action((names: string[]) => deleteEach(context, 'user', names, userPath));
}

/** `--user`, else the user the CLI authenticates as. */
async function tokenOwner(context: Context, options: Options): Promise<string> {
  const given = (options.user as string | undefined) ?? (await context.client()).config.username;
  if (given === undefined) throw new UsageError('give --user (the CLI authenticates without a user name)');
  return given;
}

const userOption = () => new Option('--user <user>', "the tokens' user (default: the one authenticating)");

function registerTokens(program: Command, context: Context): void {
  const token = program.command('token').description('API tokens (mpt_...) of a user, for OS_TOKEN');
  withOutput(
    token.command('list').description("list a user's tokens (never their secret)").addOption(userOption()),
  ).action(async (options: Options) => {
    const user = await tokenOwner(context, options);
    const body = (await (await context.client()).request('GET', tokensPath(user))).body as Row;
    await printList(context, TOKEN_FIELDS, (body.tokens ?? []) as Row[], options);
  });
  withOutput(
    token
      .command('create')
      .description('create a token (its secret is shown once)')
      .addOption(userOption())
      .option('--description <text>', 'what it is for')
      .option('--expires-in <seconds>', 'its lifetime (default: 30 days, at most a year)', positiveInt),
  ).action(async (options: Options) => {
    const user = await tokenOwner(context, options);
    const body = {
      ...(options.description !== undefined ? { description: options.description } : {}),
      ...(options.expiresIn !== undefined ? { expires_in: options.expiresIn } : {}),
    };
    const created = (await (await context.client()).request('POST', tokensPath(user), body)).body as Row;
    await printOne(context, created, options, ['id', 'token', ...TOKEN_FIELDS.slice(1), 'user']);
  });
  token
    .command('delete <id...>')
    .description('revoke tokens')
    .addOption(userOption())
    .action(async (ids: string[], options: Options) => {
      const user = await tokenOwner(context, options);
      await deleteEach(context, 'token', ids, (id) => `${tokensPath(user)}/${segment(id)}`);
    });
}
