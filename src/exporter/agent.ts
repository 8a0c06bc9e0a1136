/**
 * The distributed exporter (`jmp run --exporter-config FILE` with an endpoint and a
 * token): registers with the controller, follows its Status stream, and for each
 * lease serves a fresh session whose connections arrive through the router.
 * Outbound connections only; every retry uses reconnect.ts.
 *
 * With hooks (hooks.ts), a lease goes as upstream's does: BEFORE_LEASE_HOOK until
 * the beforeLease hook has run, LEASE_READY, and when its client ends the session
 * (EndSession) or the controller ends the lease, the afterLease hook; after a client's
 * EndSession the exporter releases the lease itself. Between leases it may run a
 * health check (health.ts).
 */
import * as net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { UserError } from "../common/errors.ts";
import { principalMetadata } from "../common/principal-metadata.ts";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { getLogger, type Logger } from "../common/log.ts";
import { ConsoleLogService } from "../gen/jumpstarter/console/v1/console_pb.ts";
import { captureConsoles } from "./console-capture.ts";
import { ConsolePush } from "./console-push.ts";
import { connectRemote, type RemoteConnection } from "../common/remote-connection.ts";
import { pipeSocketThroughRouter } from "../common/router-pipe.ts";
import type { TlsSettings } from "../common/tls.ts";
import { buildDriverTree } from "../driver/build.ts";
import type { DriverCatalog } from "../driver/catalog.ts";
import { reportTree, NAME_LABEL } from "../driver/report.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import type { ExporterHealth } from "../gen/jumpstarter/v1/health_pb.ts";
import { ControllerService, type DriverInstanceReport, type StatusResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { HealthMonitor, NO_HEALTH_CHECK } from "./health.ts";
import { ExporterHooks, resolveHooks, type StatusReport, type Verdict } from "./hooks.ts";
import { Backoff, type BackoffOptions, formatDelay, sleep } from "./reconnect.ts";
import { EXPORTER_SHUTDOWN, serveRoutes, type Served } from "./serve.ts";
import { ExporterSession } from "./session.ts";

export interface ControllerConnection {
  endpoint: string;
  token: string;
  namespace: string;
  name: string;
  /** Trust for the controller and the routers it hands out. */
  tls: TlsSettings;
}

export interface AgentOptions {
  config: ExporterConfig;
  catalog: DriverCatalog;
  connect: ControllerConnection;
  log?: Logger;
  /** Aborting it (SIGTERM, SIGINT) stops now: OFFLINE, Unregister, drivers closed. */
  signal?: AbortSignal;
  backoff?: BackoffOptions;
}

export interface RunningAgent {
  /**
   * Settles once the agent has stopped; rejects only on what retrying cannot fix (a
   * refused token, a bad config) and when a hook failed with `onFailure: exit` (a
   * UserError with exit code 1, which tells a service manager not to restart it).
   */
  done: Promise<void>;
  /** SIGHUP: stop when the current lease ends, or now when idle. */
  finishLeaseThenStop(): void;
}

const CALL_TIMEOUT_MS = 30_000;
const SHUTDOWN_CALL_TIMEOUT_MS = 5_000;
/** How long a closing lease lets its router pipes end by themselves: a few round trips through the router. */
const PIPES_SETTLE_MS = 500;
/** The controller will not change its mind about these: retrying only hides the problem. */
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied]);
/**
 * After a beforeLease hook failed with endLease, how long its client has to see why
 * (the status, and the hook's last lines on LogStream) before the lease goes: as upstream.
 */
const FAILURE_SEEN_MS = 1000;
/** After a beforeLease hook failed with exit, how long the exporter waits for a client to see why before it stops. */
const EXIT_NOTICE_MS = 30_000;

export function runAgent(opts: AgentOptions): RunningAgent {
  const agent = new Agent(opts);
  return { done: agent.run(), finishLeaseThenStop: () => agent.finishLeaseThenStop() };
}

function reasonOf(e: unknown): string {
  const err = ConnectError.from(e);
  return err.code === Code.Unavailable || err.code === Code.DeadlineExceeded
    ? err.rawMessage
    : `${Code[err.code]}: ${err.rawMessage}`;
}

class Agent {
  private readonly log: Logger;
  private readonly remote: RemoteConnection;
  private readonly controller: Client<typeof ControllerService>;
  private readonly stopping = new AbortController();
  private readonly status: StatusReporter;
  private lease?: LeaseSession;
  private registered = false;
  /** The current registration: aborted when its Status stream ends, however it ends. */
  private registration?: AbortController;
  private readonly awaitingRegistration = new Set<() => void>();
  private stopAfterLease = false;
  private readonly who: string;
  private readonly pushes = new Map<string, ConsolePush>();
  private hooks = new ExporterHooks({});
  private health?: HealthMonitor;
  /** Why the agent stops with exit code 1: a hook failed with `onFailure: exit`. */
  private failure?: string;

  constructor(private readonly opts: AgentOptions) {
    this.log = (opts.log ?? getLogger("exporter")).with({ exporter: opts.connect.name, namespace: opts.connect.namespace });
    this.who = `${opts.connect.namespace}/${opts.connect.name}`;
    this.remote = connectRemote(opts.connect.endpoint, opts.connect.tls, {
      interceptors: [principalMetadata({ ...opts.connect, kind: "Exporter" })],
      peer: "the controller",
      log: this.log,
    });
    this.controller = createClient(ControllerService, this.remote.transport);
    this.status = new StatusReporter(this.controller, this.log, this.stopping.signal, opts.backoff);
  }

  finishLeaseThenStop(): void {
    if (!this.lease) return this.stop("asked to stop (no lease in progress)");
    this.stopAfterLease = true;
    this.log.with({ lease: this.lease.name }).info(`lease ${this.lease.name}: will stop when it ends`);
  }

  private stop(why: string): void {
    if (this.stopping.signal.aborted) return;
    this.log.info(`stopping: ${why}`);
    this.stopping.abort(why);
  }

  async run(): Promise<void> {
    // A config mistake shows before any network traffic, with its file and key.
    this.hooks = new ExporterHooks(resolveHooks(this.opts.config), this.log);
    const reports = await initialReports(this.opts.config, this.opts.catalog);
    if (!this.hooks.has("healthCheck")) this.status.noHealthCheck();
    else {
      this.health = new HealthMonitor({
        hooks: this.hooks,
        log: this.log,
        openSession: async () => {
          const session = new ExporterSession({ root: buildDriverTree(this.opts.config, this.opts.catalog) });
          return { session, close: () => session.close() };
        },
        report: (health, immediately) => this.status.setHealth(health, immediately && !this.lease),
        exit: (message) => this.fail(message),
        idle: () => !this.lease,
        signal: this.stopping.signal,
      });
    }
    const onSignal = () => {
      const reason = this.opts.signal?.reason;
      this.stop(typeof reason === "string" ? reason : "stop requested");
    };
    if (this.opts.signal?.aborted) onSignal();
    this.opts.signal?.addEventListener("abort", onSignal, { once: true });
    try {
      await this.followController(reports);
    } finally {
      this.opts.signal?.removeEventListener("abort", onSignal);
      await this.shutdown();
    }
    if (this.failure) throw new UserError(this.failure, 1);
  }

  /** A hook failed with `onFailure: exit`: the exporter stops, and exits 1. */
  private fail(message: string): void {
    this.failure ??= message;
    this.stop(message);
  }

  /**
   * Register, then the Status stream; again and again while the controller comes
   * and goes. Each round is one registration, which the lease's Listen stream
   * follows (see listen()).
   */
  private async followController(reports: DriverInstanceReport[]): Promise<void> {
    const signal = this.stopping.signal;
    const backoff = new Backoff(this.opts.backoff);
    while (!signal.aborted) {
      const registration = new AbortController();
      try {
        await this.controller.register(
          { labels: { [NAME_LABEL]: this.opts.connect.name }, reports },
          { signal, timeoutMs: CALL_TIMEOUT_MS },
        );
        this.registered = true;
        backoff.connected();
        this.log.info(`registered as ${this.who}`);
        this.onRegistered(registration);
        // What it last said (a lease's status, a hook running), to a controller that may have restarted.
        this.status.report(...(this.status.lastReported() ?? AVAILABLE));
        for await (const message of this.controller.status({}, { signal })) await this.apply(message);
        if (!signal.aborted) throw new ConnectError("the controller closed the status stream", Code.Unavailable);
      } catch (e) {
        registration.abort();
        if (signal.aborted) return;
        const err = ConnectError.from(e);
        if (FATAL.has(err.code)) {
          throw new UserError(`the controller at ${this.opts.connect.endpoint} refused exporter ${this.who}: ${err.rawMessage}`);
        }
        const delay = backoff.next();
        const what = err.code === Code.Unavailable ? "controller unreachable" : "controller error";
        this.log.warn(`${what} (${reasonOf(err)}); retrying in ${formatDelay(delay)}`);
        await sleep(delay, signal);
      }
    }
  }

  private onRegistered(registration: AbortController): void {
    this.registration = registration;
    for (const wake of this.awaitingRegistration) wake();
  }

  /** The signal of a live registration, waiting for one if need be; undefined once `signal` aborts. */
  private async liveRegistration(signal: AbortSignal): Promise<AbortSignal | undefined> {
    while (!signal.aborted) {
      const current = this.registration?.signal;
      if (current && !current.aborted) return current;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.awaitingRegistration.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.awaitingRegistration.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
    return undefined;
  }

  private async apply(message: StatusResponse): Promise<void> {
    const current = this.lease;
    if (message.leased && message.leaseName) {
      // The same lease after a reconnect keeps its session and its clients.
      if (current?.name === message.leaseName) return;
      if (current) await this.endLease(current, `replaced by lease ${message.leaseName}`);
      if (this.stopping.signal.aborted || this.stopAfterLease) return;
      await this.startLease(message.leaseName, message.clientName);
    } else if (!message.leased && current) {
      // The controller only says the lease is over: released, expired or taken away.
      await this.endLease(current, "the controller ended it");
    } else if (!message.leased) {
      const checking = this.health?.idleAtStart();
      if (checking) {
        this.status.report(...AVAILABLE, checking);
        void this.health!.check("the exporter started", checking);
      }
    }
  }

  private async startLease(name: string, client: string | undefined): Promise<void> {
    // A check holds devices of its own: the lease's drivers open once it is done.
    await this.health?.running;
    if (this.stopping.signal.aborted) return;
    let lease: LeaseSession;
    const push = this.consolePush(name);
    try {
      lease = await LeaseSession.start({
        name,
        clientName: client ?? "",
        config: this.opts.config,
        catalog: this.opts.catalog,
        hooks: this.hooks,
        tls: this.opts.connect.tls,
        log: this.log,
        onStatus: (status, message) => this.status.report(status, message),
        onClientEnded: (verdict) => this.clientEnded(name, verdict),
        onConsoleOutput: push && ((driver, bytes) => push.output(driver, bytes)),
      });
    } catch (e) {
      // A device that vanished since start: the lease stays unserved, the agent stays up.
      const message = `lease ${name}: cannot start a session: ${(e as Error).message}`;
      this.log.error(message);
      this.status.report(ExporterStatus.AVAILABLE, message);
      return;
    }
    this.lease = lease;
    void this.listen(lease).catch((e: Error) => this.log.error(`lease ${name}: listening stopped: ${e.message}`));
    const who = client ? ` (client ${client})` : "";
    if (!this.hooks.has("beforeLease")) {
      this.status.report(...LEASE_READY);
      this.log.with({ lease: name, client }).info(`lease ${name}: ready${who}`);
      return;
    }
    // Not awaited: the Status stream must go on (the lease may end while the hook runs).
    void lease.beforeLease(this.stopping.signal).then((verdict) => this.beforeLeaseDone(lease, verdict, who));
  }

  /** What a beforeLease hook's result means for its lease, and for the exporter. */
  private async beforeLeaseDone(lease: LeaseSession, verdict: Verdict, who: string): Promise<void> {
    if (this.stopping.signal.aborted || lease.ending) return;
    if (verdict.proceed) {
      this.log.with({ lease: lease.name }).info(`lease ${lease.name}: ready${who}${verdict.warning ? ` (${verdict.warning})` : ""}`);
      return;
    }
    if (verdict.onFailure === "endLease") {
      this.log.with({ lease: lease.name }).error(`lease ${lease.name}: ${verdict.message}; releasing the lease`);
      // Time for a client that polls the status to see why, before its lease goes.
      await sleep(FAILURE_SEEN_MS, lease.signal);
      if (!lease.signal.aborted) await this.releaseLease(lease.name);
      return;
    }
    // Still BEFORE_LEASE_HOOK_FAILED meanwhile (OFFLINE would turn the client's Dial away before it learns why).
    this.log.with({ lease: lease.name }).error(`lease ${lease.name}: ${verdict.message}; the exporter stops once the lease ends or its client has seen why`);
    const seen = lease.session.seen(ExporterStatus.BEFORE_LEASE_HOOK_FAILED).then(() => sleep(FAILURE_SEEN_MS, lease.signal));
    await Promise.race([seen, sleep(EXIT_NOTICE_MS, lease.signal)]);
    this.fail(verdict.message);
  }

  /**
   * The client ended its session (EndSession) on an exporter with lease hooks: the
   * afterLease hook has run; the exporter gives the lease back itself, as upstream.
   */
  private async clientEnded(name: string, verdict: Verdict | undefined): Promise<void> {
    if (verdict?.proceed === false && verdict.onFailure === "exit") {
      // As upstream: no release, the exporter goes offline (the lease stays for when it is back).
      return this.fail(verdict.message);
    }
    if (verdict?.proceed === false) this.log.with({ lease: name }).error(`lease ${name}: ${verdict.message}`);
    await this.releaseLease(name);
  }

  /** ReleaseLease as the exporter, tried again while the controller is away (the Status stream then ends the lease). */
  private async releaseLease(name: string): Promise<void> {
    const backoff = new Backoff(this.opts.backoff);
    while (!this.stopping.signal.aborted && this.lease?.name === name) {
      try {
        await this.controller.releaseLease({ name }, { signal: this.stopping.signal, timeoutMs: CALL_TIMEOUT_MS });
        this.log.with({ lease: name }).info(`lease ${name}: released`);
        return;
      } catch (e) {
        const err = ConnectError.from(e);
        // Already over (released by its client meanwhile, or expired): nothing to give back.
        if (err.code === Code.FailedPrecondition || err.code === Code.NotFound || err.code === Code.PermissionDenied) return;
        const delay = backoff.next();
        this.log.with({ lease: name }).warn(`lease ${name}: cannot release it (${reasonOf(err)}); retrying in ${formatDelay(delay)}`);
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** The lease's console output on its way to the controller; none with consoleCapture.maxBytes 0. */
  private consolePush(name: string): ConsolePush | undefined {
    const keep = this.opts.config.consoleCapture.maxBytes;
    if (keep === 0) return undefined;
    const push = new ConsolePush(createClient(ConsoleLogService, this.remote.transport), name, keep, this.log.with({ lease: name }));
    this.pushes.set(name, push);
    return push;
  }

  private async endLease(lease: LeaseSession, why: string): Promise<void> {
    if (this.lease === lease) this.lease = undefined;
    const after = await lease.close(`lease ${lease.name} ended (${why})`, { afterLease: true });
    // The drivers are closed: the consoles' last output is in, and goes to the controller.
    const push = this.pushes.get(lease.name);
    this.pushes.delete(lease.name);
    await push?.finish();
    this.log.with({ lease: lease.name }).info(`lease ${lease.name}: ended (${why})`);
    if (after?.proceed === false && after.onFailure === "exit") return this.fail(after.message);
    if (after?.proceed === false) this.log.with({ lease: lease.name }).error(`lease ${lease.name}: ${after.message}`);
    if (this.stopAfterLease) return this.stop(`lease ${lease.name} ended`);
    if (this.opts.config.exitOnLeaseEnd) return this.stop("exitOnLeaseEnd is set");
    // One report: available, and with a check due, that it runs, so the scheduler waits for it.
    const checking = this.health?.idleAfterLease();
    this.status.report(...AVAILABLE, checking);
    if (checking) void this.health!.check(`lease ${lease.name} ended`, checking);
  }

  /**
   * Listen(lease): each message is one client connection to carry through the
   * router. One Listen stream per registration: when the Status stream is
   * interrupted in any way, this one is dropped and opened again once the agent
   * has registered anew. A restarted controller has forgotten its listeners, and
   * a Listen call left behind on a dead connection may never hear so (Bun closes
   * a call that has no answer yet without an error), which left a Ready lease
   * unreachable after every controller restart.
   */
  private async listen(lease: LeaseSession): Promise<void> {
    const backoff = new Backoff(this.opts.backoff);
    for (;;) {
      const registration = await this.liveRegistration(lease.signal);
      if (!registration) return;
      const signal = AbortSignal.any([lease.signal, registration]);
      try {
        backoff.connected();
        for await (const m of this.controller.listen({ leaseName: lease.name }, { signal })) {
          lease.carry(m.routerEndpoint, m.routerToken);
        }
        if (!signal.aborted) throw new ConnectError("the controller closed the listen stream", Code.Unavailable);
      } catch (e) {
        if (lease.signal.aborted) return;
        if (registration.aborted) {
          this.log.with({ lease: lease.name }).debug(`lease ${lease.name}: will listen again once registered`);
          continue;
        }
        const delay = backoff.next();
        // The controller ends Listen when the lease ends, a moment before the Status
        // stream says so: that is routine, not worth a warning.
        const routine = e instanceof ConnectError && [Code.Unavailable, Code.PermissionDenied, Code.FailedPrecondition].includes(e.code);
        this.log[routine ? "debug" : "warn"](`lease ${lease.name}: listen stream interrupted (${reasonOf(e)}); retrying in ${formatDelay(delay)}`);
        await sleep(delay, signal);
      }
    }
  }

  private async shutdown(): Promise<void> {
    this.stopping.abort("stopping");
    const lease = this.lease;
    this.lease = undefined;
    // Before it goes: the lease's afterLease hook cleans up as upstream's exporter does on
    // a stop. The lease itself stays with the controller, for when the exporter is back.
    const after = await lease?.close(EXPORTER_SHUTDOWN.message, { afterLease: true });
    if (after?.proceed === false && after.onFailure === "exit") this.failure ??= after.message;
    if (this.registered) {
      const options = { timeoutMs: SHUTDOWN_CALL_TIMEOUT_MS };
      try {
        await this.controller.reportStatus({ status: ExporterStatus.OFFLINE, message: "Exporter shutting down" }, options);
      } catch (e) {
        this.log.warn(`could not report OFFLINE (${reasonOf(e)})`);
      }
      try {
        await this.controller.unregister({ reason: "Exporter shutdown" }, options);
        this.log.info(`unregistered ${this.who}`);
      } catch (e) {
        this.log.warn(`could not unregister (${reasonOf(e)})`);
      }
    }
    this.remote.close();
  }
}

const AVAILABLE: [ExporterStatus, string] = [ExporterStatus.AVAILABLE, "Available for new lease"];
const LEASE_READY: [ExporterStatus, string] = [ExporterStatus.LEASE_READY, "Ready for commands"];

/** The report tree for Register, from a driver tree built once and closed again. */
async function initialReports(config: ExporterConfig, catalog: DriverCatalog): Promise<DriverInstanceReport[]> {
  const session = new ExporterSession({ root: buildDriverTree(config, catalog), status: ExporterStatus.AVAILABLE });
  const reports = reportTree(session.root);
  await session.close();
  return reports;
}

/**
 * ReportStatus, latest wins: while the controller is away, only the newest status
 * is retried; a status superseded before it was sent is never sent.
 */
class StatusReporter {
  private latest?: { status: ExporterStatus; message: string };
  /** The last status asked for, sent again when only the health changes. */
  private last?: { status: ExporterStatus; message: string };
  /**
   * Sent with every status (ours, see health.proto; upstream's controller skips it).
   * Undefined until an exporter with a health check knows a result: the controller
   * keeps what it knew, an unhealthy exporter does not look healthy after a restart.
   */
  private health?: ExporterHealth;
  private sending = false;

  constructor(
    private readonly controller: Client<typeof ControllerService>,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
    private readonly backoffOptions?: BackoffOptions,
  ) {}

  /** Reports a status, and with it a new health result when one is given (in one call: no moment between them). */
  report(status: ExporterStatus, message: string, health?: ExporterHealth): void {
    if (health) this.health = health;
    this.latest = this.last = { status, message };
    if (!this.sending) void this.drain();
  }

  lastReported(): [ExporterStatus, string] | undefined {
    return this.last && [this.last.status, this.last.message];
  }

  /** Exporters without a health check say so, and the controller forgets any earlier result. */
  noHealthCheck(): void {
    this.health = NO_HEALTH_CHECK;
  }

  /** A new health result, reported now with the last status when `send`, else with the next one. */
  setHealth(health: ExporterHealth, send: boolean): void {
    this.health = health;
    if (send && this.last) this.report(this.last.status, this.last.message);
  }

  private async drain(): Promise<void> {
    this.sending = true;
    const backoff = new Backoff(this.backoffOptions);
    while (this.latest && !this.signal.aborted) {
      const next = this.latest;
      try {
        await this.controller.reportStatus({ ...next, health: this.health }, { signal: this.signal, timeoutMs: CALL_TIMEOUT_MS });
        if (this.latest === next) this.latest = undefined;
        this.log.debug(`reported status ${ExporterStatus[next.status]}`);
        backoff.reset();
      } catch (e) {
        if (this.signal.aborted) break;
        const delay = backoff.next();
        this.log.debug(`reporting status ${ExporterStatus[next.status]} failed (${reasonOf(e)}); retrying in ${formatDelay(delay)}`);
        await sleep(delay, this.signal);
      }
    }
    this.sending = false;
  }
}

/** One generation of a lease's session: fresh drivers on their own socket, and the router connections piped into it. */
interface Generation {
  session: ExporterSession;
  served: Served;
  socketPath: string;
  /** Router connections piped into it right now. */
  connections: number;
  /** Its client ended it: it takes no new connections, and goes once its last one has. */
  retired: boolean;
}

export interface LeaseSessionOptions {
  name: string;
  /** The client holding the lease (CLIENT_NAME in hooks). */
  clientName?: string;
  config: ExporterConfig;
  catalog: DriverCatalog;
  /** The lease hooks to run; none when absent. */
  hooks?: ExporterHooks;
  /** Trust for the routers. */
  tls: TlsSettings;
  log: Logger;
  /** The exporter's status changed because of the lease: a hook, or something a client did (EndSession). */
  onStatus: StatusReport;
  /**
   * With lease hooks: the client ended its session and the afterLease hook has run
   * (its verdict; undefined when it was skipped). The exporter then releases the lease.
   */
  onClientEnded?: (verdict: Verdict | undefined) => void;
  /** Told each console's output, from the moment the session's drivers exist (console-capture.ts). */
  onConsoleOutput?: (driver: string, bytes: Uint8Array) => void;
}

/**
 * Everything one lease holds: a session with fresh drivers on a private socket,
 * and the router connections piped into it. When the client calls EndSession the
 * session turns AVAILABLE and closes its drivers (the client still sees that
 * status on its open connection), and a fresh session takes the next connections,
 * so the lease can be used again (`jmp shell --lease` a second time). A connection
 * that arrives while the fresh one is being set up waits for it.
 */
export class LeaseSession {
  private readonly abort = new AbortController();
  /** The generation new connections go to; pending while a fresh one starts after an EndSession. */
  private next!: Promise<Generation>;
  /** The newest generation served. */
  private latest!: Generation;
  private readonly all = new Set<Generation>();
  private generation = 0;
  /** Work in flight (renewals, connections): close() waits for all of it. */
  private readonly work = new Set<Promise<void>>();
  private closing?: Promise<Verdict | undefined>;
  /** The beforeLease hook's run and its verdict, once it has one. */
  private before?: Promise<Verdict>;
  private beforeVerdict?: Verdict;
  /** The afterLease hook's run: once per lease, whoever asks first. */
  private after?: Promise<Verdict | undefined>;

  private constructor(
    private readonly opts: LeaseSessionOptions,
    private readonly dir: string,
  ) {}

  static async start(opts: LeaseSessionOptions): Promise<LeaseSession> {
    const lease = new LeaseSession(opts, mkdtempSync(join(tmpdir(), "jmp-lease-")));
    try {
      const first = await lease.serveFresh();
      lease.next = Promise.resolve(first);
    } catch (e) {
      rmSync(lease.dir, { recursive: true, force: true });
      throw e;
    }
    return lease;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Aborts when the lease is closed. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The newest session (the one new connections reach once it is ready). */
  get session(): ExporterSession {
    return this.latest.session;
  }

  get socketPath(): string {
    return this.latest.socketPath;
  }

  private track(job: Promise<void>): void {
    this.work.add(job);
    void job.then(() => this.work.delete(job));
  }

  private get ctx() {
    return { leaseName: this.opts.name, clientName: this.opts.clientName ?? "" };
  }

  /**
   * Runs the beforeLease hook on the session: BEFORE_LEASE_HOOK (clients may connect
   * and wait, their driver calls refused) until it has run.
   */
  beforeLease(signal?: AbortSignal): Promise<Verdict> {
    // A lease that ended while its hook ran is not ready for anyone: as upstream, no LEASE_READY then.
    const report: StatusReport = (status, message) => {
      if (!(this.ending && status === ExporterStatus.LEASE_READY)) this.opts.onStatus(status, message);
    };
    this.before ??= this.opts.hooks!.beforeLease(this.latest.session, this.ctx, report, signal).then((v) => (this.beforeVerdict = v));
    return this.before;
  }

  /** The lease is ending (close() has begun). */
  get ending(): boolean {
    return this.closing !== undefined;
  }

  /**
   * The afterLease hook, once: after the beforeLease hook (which it waits for),
   * unless that failed and ended the lease. Started synchronously when it can be,
   * so that a client asking right after its EndSession sees AFTER_LEASE_HOOK.
   */
  private afterLease(session: ExporterSession): Promise<Verdict | undefined> {
    const start = (): Promise<Verdict | undefined> => {
      if (!this.opts.hooks?.leaseHooks || this.beforeVerdict?.proceed === false) return Promise.resolve(undefined);
      return this.opts.hooks.afterLease(session, this.ctx, this.opts.onStatus);
    };
    this.after ??= !this.before || this.beforeVerdict ? start() : this.before.then(start);
    return this.after;
  }

  private async serveFresh(): Promise<Generation> {
    this.generation += 1;
    const session = new ExporterSession({
      root: buildDriverTree(this.opts.config, this.opts.catalog),
      motd: this.opts.config.motd,
      labels: this.opts.config.metadata.name ? { [NAME_LABEL]: this.opts.config.metadata.name } : {},
      status: this.opts.hooks?.has("beforeLease") ? ExporterStatus.BEFORE_LEASE_HOOK : ExporterStatus.LEASE_READY,
    });
    if (this.opts.onConsoleOutput) await captureConsoles(session.root, this.opts.onConsoleOutput, this.opts.log.with({ lease: this.name }));
    const socketPath = join(this.dir, `session-${this.generation}.sock`);
    let served: Served;
    try {
      served = await serveRoutes(session, { unix: socketPath });
    } catch (e) {
      await session.close();
      throw e;
    }
    const entry: Generation = { session, served, socketPath, connections: 0, retired: false };
    this.all.add(entry);
    this.latest = entry;
    // Synchronously on EndSession, before its answer leaves: from then on a new
    // connection waits for the fresh generation instead of reaching this one.
    void session.ended.then(() => this.endedByClient(entry));
    return entry;
  }

  private endedByClient(entry: Generation): void {
    if (this.abort.signal.aborted || entry !== this.latest || entry.retired) return;
    if (this.opts.hooks?.leaseHooks) {
      // As upstream: the afterLease hook, then the exporter gives the lease back. The
      // client keeps its connection and watches the hook's output and status.
      const after = this.afterLease(entry.session);
      this.track(after.then(async (verdict) => {
        // The client polls: it learns how its session ended before the lease goes (upstream waits a second).
        await Promise.race([entry.session.seen(entry.session.currentStatus()), sleep(FAILURE_SEEN_MS, this.abort.signal)]);
        this.opts.onClientEnded?.(verdict);
      }));
      return;
    }
    entry.retired = true;
    // The client polls GetStatus on its open connection until it sees this.
    entry.session.setStatus(ExporterStatus.AVAILABLE, "Session ended");
    const fresh = this.renew(entry);
    this.next = fresh;
    this.track(fresh.then(
      () => {
        if (entry.connections === 0) return this.retire(entry);
      },
      (e: Error) => {
        if (!this.abort.signal.aborted) this.opts.log.with({ lease: this.name }).error(`lease ${this.name}: cannot start a fresh session: ${e.message}`);
      },
    ));
  }

  /** The drivers of the ended generation are closed before the next one opens the same devices. */
  private async renew(ended: Generation): Promise<Generation> {
    await ended.session.close();
    this.opts.log.with({ lease: this.name }).info(`lease ${this.name}: the client ended its session; drivers closed`);
    this.opts.onStatus(ExporterStatus.AVAILABLE, "Session ended by the client");
    if (this.abort.signal.aborted) throw new Error("the lease ended");
    const fresh = await this.serveFresh();
    if (!this.abort.signal.aborted) this.opts.onStatus(ExporterStatus.LEASE_READY, "Ready for commands");
    return fresh;
  }

  private async retire(entry: Generation): Promise<void> {
    if (!this.all.delete(entry)) return;
    try {
      await entry.served.close();
      await entry.session.close();
    } catch (e) {
      this.opts.log.with({ lease: this.name }).warn(`lease ${this.name}: closing an ended session failed: ${(e as Error).message}`);
    }
  }

  /** Carries one client connection: a new connection to the session, piped into the router stream. */
  carry(endpoint: string, token: string): void {
    if (this.abort.signal.aborted) return;
    this.opts.log.with({ lease: this.name }).debug(`lease ${this.name}: connection through the router at ${endpoint}`);
    this.track(this.pipe(endpoint, token).catch((e: Error) => {
      if (this.abort.signal.aborted) return;
      // A client that exits drops its end of the stream: routine (Unavailable from the router).
      const routine = e instanceof ConnectError && e.code === Code.Unavailable;
      this.opts.log[routine ? "debug" : "warn"](`lease ${this.name}: a connection through the router failed (${reasonOf(e)})`);
    }));
  }

  private async pipe(endpoint: string, token: string): Promise<void> {
    let entry = await this.next;
    // Ended while we waited: its successor is already on its way.
    while (entry.retired && !this.abort.signal.aborted) entry = await this.next;
    if (this.abort.signal.aborted) return;
    const conn = net.connect({ path: entry.socketPath, allowHalfOpen: true });
    entry.connections += 1;
    try {
      await pipeSocketThroughRouter(conn, { endpoint, token, tls: this.opts.tls, signal: this.abort.signal });
    } finally {
      entry.connections -= 1;
      if (entry.retired && entry.connections === 0 && !this.abort.signal.aborted) this.track(this.retire(entry));
    }
  }

  /**
   * Ends the lease: with `afterLease`, first its afterLease hook (if it has not run),
   * while clients still see its output; then the clients' open calls, with
   * UNAVAILABLE and `message`, while the router pipes can still carry that status to
   * them; then its connections, its sockets, its drivers. Resolves to the verdict of
   * an afterLease hook that this close ran.
   */
  close(message = EXPORTER_SHUTDOWN.message, opts: { afterLease?: boolean } = {}): Promise<Verdict | undefined> {
    return (this.closing ??= (async () => {
      const ranBefore = this.after !== undefined;
      const verdict = opts.afterLease ? await this.afterLease(this.latest.session) : undefined;
      await Promise.all([...this.all].map((e) => e.served.close({ ...EXPORTER_SHUTDOWN, message })));
      // With its session socket closed, each pipe sends what it still holds and ends
      // once the client's side has ended too: a cut now could lose the status.
      await Promise.race([Promise.all(this.work), sleep(PIPES_SETTLE_MS)]);
      this.abort.abort("lease ended");
      while (this.work.size > 0) await Promise.all(this.work);
      await Promise.all([...this.all].map((e) => this.retire(e)));
      rmSync(this.dir, { recursive: true, force: true });
      return ranBefore ? undefined : verdict;
    })());
  }
}
