/**
 * Metalplane's own CloudWatch metrics (docs/observability.md), written as the Embedded
 * Metric Format by Powertools Metrics: one JSON line on stdout per dimension combination,
 * which CloudWatch Logs turns into metrics of the `Metalplane` namespace. Nothing is
 * called on AWS: no latency, no IAM.
 *
 * A typed, thin layer over Powertools: each metric of `METRICS` has its unit and the
 * dimension sets it is published under. A point names the dimension values it has
 * (`{ site }`, `{ route, statusClass }`); it goes to every set whose keys it has all of,
 * so `CommandsQueued` of site `dc1` lands both in `{site=dc1}` (per site) and in the set
 * without dimensions (the fleet's total, which the alarms watch: a new site needs no new
 * alarm). The `service` (the Lambda) is written as metadata, never as a dimension: the
 * same command metric is emitted by several Lambdas.
 *
 * Cardinality: the dimension values are bounded by design: sites (hundreds), route
 * templates (`GET /v1/nodes/{node}`, never a raw path), status classes (`4xx`, `5xx`).
 * Never a node, a command or a request id (those go to the logs).
 *
 * Buffered per invocation and written by `flush` (the entry points' middleware does it
 * after every invocation, error or not). Until `configure` turns it on (the entry points,
 * in Lambda only), recording is a no-op: tests and the local stack print nothing.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** The CloudWatch namespace of every metric here (`infra/observability.ts` reads the same). */
export const METRICS_NAMESPACE = 'Metalplane';

export type DimensionName = 'site' | 'route' | 'statusClass';
type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

interface MetricDefinition {
  readonly unit: Unit;
  /** The dimension sets the metric is published under ([] = no dimension: the total). */
  readonly sets: readonly (readonly DimensionName[])[];
}

const perSiteAndTotal = [['site'], []] as const;

/**
 * Every metric Metalplane emits through this module. `infra/observability.ts` alarms on
 * these names (without dimensions); `test/unit/observability-metrics.test.ts` holds the
 * two lists equal.
 */
export const METRICS = {
  /** A command's message was queued on its site's queue (`CommandQueue.dispatch`). */
  CommandsQueued: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** An agent's result `succeeded` was stored. */
  CommandsSucceeded: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** A command failed: its agent's result `failed`, or it was dead-lettered. */
  CommandsFailed: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** A command's deadline passed without a result. */
  CommandsExpired: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** Queued → first handed to the site's agent (its first delivery), in milliseconds. */
  DispatchLatency: { unit: MetricUnit.Milliseconds, sets: perSiteAndTotal },
  /** An agent opened its WebSocket (`$connect` accepted). */
  AgentConnections: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** An agent's WebSocket closed (`$disconnect`). */
  AgentDisconnections: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** Agents alive (a heartbeat within 60 s, as Ironic's conductors), each tick: the fleet's gauge. */
  AgentsConnected: { unit: MetricUnit.Count, sets: [[]] },
  /** Agents whose last heartbeat is older than the silence threshold, each tick (per site when > 0). */
  AgentsSilent: { unit: MetricUnit.Count, sets: perSiteAndTotal },
  /** API answers 4xx/5xx, per route template and class. */
  ApiErrors: { unit: MetricUnit.Count, sets: [['route', 'statusClass'], ['statusClass']] },
  /** Power reports whose BMC read failed (an error, or no power state). */
  PowerSyncFailures: { unit: MetricUnit.Count, sets: perSiteAndTotal },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRICS;

/**
 * Image verification failures are counted from the logs (a metric filter on the message
 * the image catalog logs, `infra/observability.ts`): they happen in the api Lambda (small
 * files, in the request) and in the image-verify Lambda alike.
 */
export const IMAGE_VERIFICATION_FAILURES = 'ImageVerificationFailures';
export const IMAGE_VERIFICATION_FAILED_MESSAGE = 'image file failed verification';

/** The dimension values one point carries. */
export type Dimensions = Partial<Readonly<Record<DimensionName, string>>>;

/** What a recorded command says of itself (a `CommandRecord` fits). */
export interface CommandFacts {
  readonly id: string;
  readonly node: string;
  readonly site: string;
  readonly status: string;
  readonly created_at?: string;
}

/** Told of each command the invocation queued or finished (the tracer's annotations). */
export type CommandAnnotator = (command: CommandFacts) => void;

export interface MetricsSettings {
  /** The Lambda's service name (`metalplane-api` ...), written as metadata. */
  readonly service: string;
  /** Off: nothing is recorded (tests, the local stack). */
  readonly enabled: boolean;
  readonly annotate?: CommandAnnotator;
  /** Where Powertools' own warnings go (the entry point's logger); default: dropped. */
  readonly log?: { warn(message: string): void };
}

interface Point {
  readonly name: MetricName;
  readonly value: number;
  readonly dimensions: Dimensions;
}

/** At most this many values of one metric per EMF line (Powertools flushes by itself at 100). */
const VALUES_PER_LINE = 50;

export class MetricsRecorder {
  private settings: MetricsSettings = { service: 'metalplane', enabled: false };
  private powertools: Metrics | undefined;
  private points: Point[] = [];

  /** Turns recording on (or off) for this container: the entry points, once. */
  configure(settings: MetricsSettings): void {
    this.settings = settings;
    this.powertools = undefined;
    this.points = [];
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** Records one point (buffered until `flush`). */
  record(name: MetricName, value: number, dimensions: Dimensions = {}): void {
    if (!this.settings.enabled || !Number.isFinite(value)) return;
    this.points.push({ name, value, dimensions });
  }

  // --- what the control plane reports ------------------------------------------------

  commandQueued(command: CommandFacts): void {
    this.record('CommandsQueued', 1, { site: command.site });
    this.annotate(command);
  }

  /** A command that reached a finished state now (succeeded, failed, expired); others are ignored. */
  commandFinished(command: CommandFacts): void {
    const name = FINISHED[command.status];
    if (!name) return;
    this.record(name, 1, { site: command.site });
    this.annotate(command);
  }

  /** A command handed to its agent: the dispatch latency of its first delivery. */
  commandDelivered(command: CommandFacts, attempt: number, at: Date): void {
    if (attempt !== 1 || !command.created_at) return;
    const latency = at.getTime() - Date.parse(command.created_at);
    if (latency >= 0) this.record('DispatchLatency', latency, { site: command.site });
  }

  agentConnected(site: string): void {
    this.record('AgentConnections', 1, { site });
  }

  agentDisconnected(site: string): void {
    this.record('AgentDisconnections', 1, { site });
  }

  /** The API's answer: 4xx and 5xx counted per route template (`GET /v1/nodes/{node}`). */
  apiResponse(route: string, status: number): void {
    if (status < 400 || status > 599) return;
    this.record('ApiErrors', 1, { route, statusClass: status >= 500 ? '5xx' : '4xx' });
  }

  /** A site's power reports: those whose BMC could not be read. */
  powerReports(
    site: string,
    reports: ReadonlyArray<{ readonly error?: string; readonly power_state: unknown }>,
  ) {
    const failed = reports.filter((report) => report.error || report.power_state === null).length;
    if (failed > 0) this.record('PowerSyncFailures', failed, { site });
  }

  private annotate(command: CommandFacts): void {
    if (!this.settings.enabled || !this.settings.annotate) return;
    try {
      this.settings.annotate(command);
    } catch {
      // Tracing never fails a request.
    }
  }

  // --- writing -------------------------------------------------------------------------

  /**
   * Writes what this invocation recorded, one EMF line per dimension combination, and
   * empties the buffer. Never throws: metrics never fail an invocation.
   */
  flush(): void {
    const points = this.points;
    this.points = [];
    if (!this.settings.enabled || points.length === 0) return;
    try {
      const metrics = this.metrics();
      for (const group of groups(points)) {
        for (const batch of batches(group.values)) {
          for (const dimensions of group.sets) metrics.addDimensions(dimensions);
          metrics.addMetadata('service', this.settings.service);
          for (const [name, values] of batch) {
            for (const value of values) metrics.addMetric(name, METRICS[name].unit, value);
          }
          metrics.publishStoredMetrics();
        }
      }
    } catch {
      // A metric that cannot be written is lost, the invocation is not.
    }
  }

  private metrics(): Metrics {
    if (!this.powertools) {
      const log = this.settings.log;
      const warn = (message: unknown) => {
        // Two sets sharing a key (`statusClass` in both of ApiErrors') is what we mean.
        if (typeof message === 'string' && /both a dimension set and dimension set/.test(message)) return;
        log?.warn(String(message));
      };
      const ignore = () => undefined;
      this.powertools = new Metrics({
        namespace: METRICS_NAMESPACE,
        serviceName: this.settings.service,
        logger: { debug: ignore, info: ignore, warn, error: warn },
      });
      // The service is metadata here: the dimensions are the metric's own sets only.
      this.powertools.clearDefaultDimensions();
    }
    return this.powertools;
  }
}

const FINISHED: Readonly<Record<string, MetricName | undefined>> = {
  succeeded: 'CommandsSucceeded',
  failed: 'CommandsFailed',
  expired: 'CommandsExpired',
};

interface Group {
  /** The dimension sets with their values, as Powertools' `addDimensions` takes them. */
  readonly sets: ReadonlyArray<Readonly<Record<string, string>>>;
  readonly values: Map<MetricName, number[]>;
}

/** The dimension sets a point goes to: those whose every key it has a value for. */
function setsOf(point: Point): Array<Record<string, string>> {
  return METRICS[point.name].sets
    .filter((keys) => keys.every((key) => point.dimensions[key]))
    .map((keys) => Object.fromEntries(keys.map((key) => [key, point.dimensions[key] as string])));
}

/** Points of the same dimension sets and values share one EMF line; counts are summed. */
function groups(points: readonly Point[]): Group[] {
  const byKey = new Map<string, Group>();
  for (const point of points) {
    const sets = setsOf(point);
    if (sets.length === 0) continue;
    const key = JSON.stringify(sets);
    let group = byKey.get(key);
    if (!group) {
      group = { sets, values: new Map() };
      byKey.set(key, group);
    }
    const values = group.values.get(point.name) ?? [];
    if (METRICS[point.name].unit === MetricUnit.Count && values.length > 0)
      values[0] = (values[0] ?? 0) + point.value;
    else values.push(point.value);
    group.values.set(point.name, values);
  }
  return [...byKey.values()];
}

/** The group's values in slices Powertools writes in one line each. */
function batches(values: ReadonlyMap<MetricName, readonly number[]>): Array<Array<[MetricName, number[]]>> {
  const longest = Math.max(...[...values.values()].map((list) => list.length));
  const result: Array<Array<[MetricName, number[]]>> = [];
  for (let start = 0; start < longest; start += VALUES_PER_LINE) {
    result.push(
      [...values.entries()]
        .map(([name, list]): [MetricName, number[]] => [name, list.slice(start, start + VALUES_PER_LINE)])
        .filter(([, list]) => list.length > 0),
    );
  }
  return result;
}

/** The one recorder of this container: the control plane reports to it, the entry point flushes it. */
export const metrics = new MetricsRecorder();
