/**
 * The layering of docs/architecture.md, checked by dependency-cruiser (`npm run depcheck`,
 * run by CI in "lint, format and types"). Paths are relative to the project root; npm
 * packages resolve to `node_modules/<name>/…`. Type-only imports count (tsPreCompilationDeps).
 * An exception is named in its rule with the issue that removes it.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, type-only ones included.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves to a file or an installed package (a typo in a path fails here).',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'domain-is-pure',
      severity: 'error',
      comment:
        'lambda/domain is pure logic: no handlers, conductor, HTTP toolkit or AWS adapters, no infra, no AWS SDK or CDK.',
      from: { path: '^lambda/domain/' },
      to: {
        path: [
          '^lambda/(adapters|api|agents|conductor|http|entrypoints)/',
          '^lambda/(runtime|config)[.]ts$',
          '^infra/',
          '^node_modules/(@aws-sdk|@smithy|aws-cdk-lib|constructs)/',
        ],
      },
    },
    {
      name: 'protocol-stands-alone',
      severity: 'error',
      comment: 'protocol/ is what both ends share: it imports neither end.',
      from: { path: '^protocol/' },
      to: { path: '^(lambda|agent|infra)/' },
    },
    {
      name: 'agent-only-through-protocol',
      severity: 'error',
      comment: 'The agent shares only protocol/ with the control plane.',
      from: { path: '^agent/' },
      to: { path: '^(lambda|infra)/' },
    },
    {
      name: 'conductor-below-handlers',
      severity: 'error',
      comment:
        'The conductor is a library the api and agents Lambdas use; it does not import them. ' +
        'The conductor Lambda (lambda/entrypoints/conductor.ts) takes its wiring from the composition root, lambda/runtime.ts.',
      from: { path: '^lambda/conductor/' },
      to: { path: '^lambda/(api|agents)/' },
    },
    {
      name: 'conductor-library-not-to-composition-root',
      severity: 'error',
      comment:
        'Only the Lambdas (entry points, api routes) take the wiring of lambda/runtime.ts; the conductor ' +
        'library is given its collaborators.',
      from: { path: '^lambda/conductor/' },
      to: { path: '^lambda/runtime[.]ts$' },
    },
    {
      name: 'entrypoints-on-top',
      severity: 'error',
      comment:
        'lambda/entrypoints/ holds the Lambda handlers (infra/stack.ts points at them): the top layer. ' +
        'Nothing imports an entry point but the local stack, which serves the very same handlers.',
      from: { path: '^lambda/', pathNot: '^lambda/entrypoints/' },
      to: { path: '^lambda/entrypoints/' },
    },
    {
      name: 'composition-root-from-above',
      severity: 'error',
      comment:
        'lambda/runtime.ts, the composition root, is taken by the entry points (and, for now, the api ' +
        'routes and authentication, through controlPlaneFor, and agents/ for its re-exports and types); ' +
        'no adapter, HTTP toolkit, image catalog or config imports it.',
      from: { path: '^lambda/(adapters|http|images|domain)/|^lambda/config[.]ts$' },
      to: { path: '^lambda/runtime[.]ts$' },
    },
    {
      name: 'config-is-a-leaf',
      severity: 'error',
      comment:
        'lambda/config.ts reads the environment into a typed object: it imports only the names of ' +
        'infra/resources.ts and pure domain parsers, never a component it configures.',
      from: { path: '^lambda/config[.]ts$' },
      to: { path: '^lambda/(adapters|api|agents|conductor|http|images|entrypoints)/|^lambda/runtime[.]ts$' },
    },
    {
      name: 'api-routes-not-to-agents',
      severity: 'error',
      comment:
        'The API routes reach the conductor through the composition root (lambda/runtime.ts), not ' +
        "through the agents Lambda. One exception: routes/agents.ts serves the agent channel's HTTPS " +
        'fallback, so it takes the message handling (channel.ts) and the agent identity type (credentials.ts).',
      from: { path: '^lambda/api/routes/', pathNot: '^lambda/api/routes/agents[.]ts$' },
      to: { path: '^lambda/agents/' },
    },
    {
      name: 'api-agent-routes-only-the-channel',
      severity: 'error',
      comment: 'routes/agents.ts: of lambda/agents/, the message handling and the credentials only.',
      from: { path: '^lambda/api/routes/agents[.]ts$' },
      to: { path: '^lambda/agents/', pathNot: '^lambda/agents/(channel|credentials)[.]ts$' },
    },
    {
      name: 'infra-not-lambda',
      severity: 'error',
      comment:
        'The CDK app does not import the Lambdas; the names both use (tables, queues, env vars) live in infra/resources.ts, which lambda/ imports.',
      from: { path: '^infra/' },
      to: { path: '^lambda/' },
    },
  ],
  options: {
    // `depcruise .`: every source file of the project; not the dot directories (.venv,
    // .engines, .local …), not CDK's bundles, and npm packages only as import targets.
    exclude: { path: '^(cdk[.]out/|[.])' },
    doNotFollow: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
