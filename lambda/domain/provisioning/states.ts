/**
 * Ironic's provision state machine as data (`ironic/common/states.py`, Ironic 21.4):
 * the 24 states (stable or not, with the stable state each transient one aims at), the
 * 63 transitions, and the API verbs (`target` of `PUT /v1/nodes/{node}/states/provision`)
 * with the event each one fires.
 *
 * `../shared/ironic-reference/provision-states.json` holds the same states, (from, event)
 * pairs and verbs; its `to` values were recorded as Python object reprs, so the
 * destinations here come from states.py (`machine.add_transition(FROM, TO, EVENT)`).
 * `test/unit/provisioning-machine.test.ts` checks this table against both.
 */

export const PROVISION_STATES = [
  'enroll',
  'manageable',
  'available',
  'active',
  'error',
  'rescue',
  'verifying',
  'deploying',
  'wait call-back',
  'deploy failed',
  'cleaning',
  'clean wait',
  'clean failed',
  'deleting',
  'inspecting',
  'inspect failed',
  'inspect wait',
  'adopting',
  'adopt failed',
  'rescuing',
  'rescue wait',
  'rescue failed',
  'unrescuing',
  'unrescue failed',
] as const;

export type ProvisionState = (typeof PROVISION_STATES)[number];

/** The states a node rests in; every other state is on its way to one of them. */
export const STABLE_STATES = ['enroll', 'manageable', 'available', 'active', 'error', 'rescue'] as const;
export type StableState = (typeof STABLE_STATES)[number];

/** For each transient state, the stable state it works towards (states.py `target=`). */
export const DEFAULT_TARGETS: Readonly<Record<Exclude<ProvisionState, StableState>, StableState>> = {
  verifying: 'manageable',
  deploying: 'active',
  'wait call-back': 'active',
  'deploy failed': 'active',
  cleaning: 'available',
  'clean wait': 'available',
  'clean failed': 'available',
  deleting: 'available',
  inspecting: 'manageable',
  'inspect failed': 'manageable',
  'inspect wait': 'manageable',
  adopting: 'active',
  'adopt failed': 'active',
  rescuing: 'rescue',
  'rescue wait': 'rescue',
  'rescue failed': 'rescue',
  unrescuing: 'active',
  'unrescue failed': 'active',
};

/** Events of the machine: the ones API verbs fire, and the ones the conductor fires. */
export const PROVISION_EVENTS = [
  'manage',
  'provide',
  'inspect',
  'deploy',
  'rebuild',
  'delete',
  'clean',
  'abort',
  'adopt',
  'rescue',
  'unrescue',
  'done',
  'fail',
  'wait',
  'resume',
] as const;

export type ProvisionEvent = (typeof PROVISION_EVENTS)[number];

/** Events only the conductor fires (a verb never names them). */
export const INTERNAL_EVENTS = [
  'done',
  'fail',
  'wait',
  'resume',
] as const satisfies readonly ProvisionEvent[];
export type InternalEvent = (typeof INTERNAL_EVENTS)[number];

export type Transition = readonly [from: ProvisionState, event: ProvisionEvent, to: ProvisionState];

/** Every transition, in states.py's order of `(from, event)` as the reference JSON lists them. */
export const TRANSITIONS: readonly Transition[] = [
  ['enroll', 'manage', 'verifying'],
  ['manageable', 'provide', 'cleaning'],
  ['manageable', 'clean', 'cleaning'],
  ['manageable', 'inspect', 'inspecting'],
  ['manageable', 'adopt', 'adopting'],
  ['available', 'deploy', 'deploying'],
  ['available', 'manage', 'manageable'],
  ['active', 'rebuild', 'deploying'],
  ['active', 'delete', 'deleting'],
  ['active', 'rescue', 'rescuing'],
  ['error', 'rebuild', 'deploying'],
  ['error', 'delete', 'deleting'],
  ['rescue', 'rescue', 'rescuing'],
  ['rescue', 'delete', 'deleting'],
  ['rescue', 'unrescue', 'unrescuing'],
  ['verifying', 'done', 'manageable'],
  ['verifying', 'fail', 'enroll'],
  ['deploying', 'fail', 'deploy failed'],
  ['deploying', 'wait', 'wait call-back'],
  ['deploying', 'done', 'active'],
  ['wait call-back', 'resume', 'deploying'],
  ['wait call-back', 'fail', 'deploy failed'],
  ['wait call-back', 'delete', 'deleting'],
  ['deploy failed', 'rebuild', 'deploying'],
  ['deploy failed', 'deploy', 'deploying'],
  ['deploy failed', 'delete', 'deleting'],
  ['cleaning', 'done', 'available'],
  ['cleaning', 'fail', 'clean failed'],
  ['cleaning', 'wait', 'clean wait'],
  // Manual cleaning ends here (the conductor fires `manage` instead of `done`).
  ['cleaning', 'manage', 'manageable'],
  ['clean wait', 'fail', 'clean failed'],
  ['clean wait', 'abort', 'clean failed'],
  ['clean wait', 'resume', 'cleaning'],
  ['clean failed', 'manage', 'manageable'],
  ['deleting', 'fail', 'error'],
  ['deleting', 'clean', 'cleaning'],
  ['inspecting', 'done', 'manageable'],
  ['inspecting', 'fail', 'inspect failed'],
  ['inspecting', 'wait', 'inspect wait'],
  ['inspect failed', 'manage', 'manageable'],
  ['inspect failed', 'inspect', 'inspecting'],
  ['inspect wait', 'done', 'manageable'],
  ['inspect wait', 'fail', 'inspect failed'],
  ['inspect wait', 'abort', 'inspect failed'],
  ['adopting', 'done', 'active'],
  ['adopting', 'fail', 'adopt failed'],
  ['adopt failed', 'adopt', 'adopting'],
  ['adopt failed', 'manage', 'manageable'],
  ['rescuing', 'done', 'rescue'],
  ['rescuing', 'wait', 'rescue wait'],
  ['rescuing', 'fail', 'rescue failed'],
  ['rescue wait', 'resume', 'rescuing'],
  ['rescue wait', 'fail', 'rescue failed'],
  ['rescue wait', 'abort', 'rescue failed'],
  ['rescue wait', 'delete', 'deleting'],
  ['rescue failed', 'rescue', 'rescuing'],
  ['rescue failed', 'unrescue', 'unrescuing'],
  ['rescue failed', 'delete', 'deleting'],
  ['unrescuing', 'done', 'active'],
  ['unrescuing', 'fail', 'unrescue failed'],
  ['unrescue failed', 'rescue', 'rescuing'],
  ['unrescue failed', 'unrescue', 'unrescuing'],
  ['unrescue failed', 'delete', 'deleting'],
];

/** The `target` values of `PUT .../states/provision` and the event each fires (states.VERBS). */
export const VERBS = {
  active: 'deploy',
  deploy: 'deploy',
  deleted: 'delete',
  undeploy: 'delete',
  manage: 'manage',
  provide: 'provide',
  inspect: 'inspect',
  abort: 'abort',
  clean: 'clean',
  adopt: 'adopt',
  rescue: 'rescue',
  unrescue: 'unrescue',
} as const satisfies Record<string, ProvisionEvent>;

/**
 * What a client may send as `target`: the verbs, plus `rebuild`, an event Ironic's API
 * takes by its own name (states.REBUILD; there is no verb for it).
 */
export type ProvisionVerb = keyof typeof VERBS | 'rebuild';

/**
 * The microversion each verb needs (`MIN_VERB_VERSIONS`, api/controllers/v1/utils.py);
 * `active`, `deleted` and `rebuild` exist since 1.1. Below it the answer is 406.
 */
export const VERB_MIN_MINOR: Readonly<Partial<Record<ProvisionVerb, number>>> = {
  manage: 4,
  provide: 4,
  inspect: 6,
  abort: 13,
  clean: 15,
  adopt: 17,
  rescue: 38,
  unrescue: 38,
  deploy: 73,
  undeploy: 73,
};

/**
 * Ironic's event_type vocabulary for node history (states.py, "Node history event
 * types"); a driver may write others, so history stores a plain string.
 */
export const HISTORY_EVENT_TYPES = {
  provisioning: 'provisioning',
  cleaning: 'cleaning',
  deploying: 'deploying',
  takeover: 'takeover',
  introspection: 'introspection',
  rescue: 'rescue',
  conductor: 'conductor',
  transition: 'transition',
  startFailure: 'startup failure',
  unprovision: 'unprovision',
  adoption: 'adoption',
  console: 'console',
  monitoring: 'monitoring',
  verify: 'verify',
} as const;
