import { Api, ApiError } from './api';
import type { DrawingModel } from './drawing/index';

type Listener = (...args: any[]) => void;

/**
 * What a widget's drawing module talks to, answered over REST instead of a kernel: the same ES module draws in a
 * notebook (anywidget's model, answered by the kernel) and in the panel (this, answered by the server extension).
 * `send` and `set` map the module's messages onto routes; answers come back as the same custom messages.
 */
export class RestModel implements DrawingModel {
  protected state: Record<string, any>;
  private listeners = new Map<string, Set<Listener>>();

  constructor(
    protected api: Api,
    protected name: string,
    state: Record<string, any>
  ) {
    this.state = { ...state };
  }

  get(key: string): any {
    return this.state[key];
  }

  set(key: string, value: any): void {
    this.state[key] = value;
    this.emit(`change:${key}`);
    void this.changed(key, value).catch(err => this.fail(err));
  }

  save_changes(): void {
    // nothing to sync: set() already answered
  }

  send(content: any): void {
    void this.handle(content).catch(err => this.fail(err, content));
  }

  on(event: string, callback: Listener): void {
    if (!this.listeners.has(event)) {
      this.listeners.set(event, new Set());
    }
    this.listeners.get(event)!.add(callback);
  }

  off(event: string, callback?: Listener): void {
    if (callback) {
      this.listeners.get(event)?.delete(callback);
    } else {
      this.listeners.delete(event);
    }
  }

  protected emit(event: string, ...args: any[]): void {
    for (const callback of this.listeners.get(event) ?? []) {
      callback(...args);
    }
  }

  protected message(content: any): void {
    this.emit('msg:custom', content, []);
  }

  protected fail(err: unknown, content?: any): void {
    const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
    this.message({ kind: 'error', message, request: content?.request });
  }

  protected async handle(content: any): Promise<void> {
    // a drawing module's message this host does not answer
  }

  protected async changed(key: string, value: any): Promise<void> {
    // a trait this host does not answer
  }
}

/** The version timeline, over REST (see mm_magics/widgets/timeline.py for the kernel's side of each message). */
export class TimelineModel extends RestModel {
  private etag = '';

  protected async handle(content: any): Promise<void> {
    const kind = content?.kind;
    if (kind === 'poll') {
      const moved = await this.api.changed(this.etag);
      if (moved === null) {
        this.message({ kind: 'same' });
        return;
      }
      this.etag = moved;
      await this.patch(content.head);
    } else if (kind === 'select') {
      await this.select(content.number, content.request);
    } else if (kind === 'metric') {
      const payload = await this.api.get(`models/${this.name}/timeline`, { metric: content.name });
      this.set('payload', payload);
    } else if (kind === 'act') {
      await this.act(content);
    }
  }

  private async patch(since: string | undefined): Promise<void> {
    const payload = await this.api.get(`models/${this.name}/timeline`, {
      metric: this.state.payload?.metric,
      since
    });
    await this.refreshServing();
    this.message({ kind: 'patch', payload });
  }

  private async refreshServing(): Promise<void> {
    const { deployments } = await this.api.get<{ deployments: any[] }>('deployments');
    const dep = deployments.find(d => d.name === this.name);
    const serving = dep ? { version: dep.version, status: dep.status } : {};
    if (JSON.stringify(serving) !== JSON.stringify(this.state.serving ?? {})) {
      this.set('serving', serving);
    }
  }

  private async select(number: number, request?: number): Promise<void> {
    const details = await this.api.get(`versions/${this.name}@v${number}`, { details: 1 });
    this.message({ kind: 'details', request, details });
  }

  /** One route per action; the answer in the words the kernel uses, then the patch and fresh details. */
  private async act(content: any): Promise<void> {
    const spec = `${this.name}@v${content.number}`;
    const reason = `from the Models panel: ${content.action} ${spec}`;
    let message: string;
    if (content.action === 'deploy') {
      const dep = await this.api.json<any>(
        'POST',
        `versions/${spec}/deploy`,
        {},
        { message: reason }
      );
      message = `${dep.version} serves at ${dep.url} (${dep.status})`;
    } else if (content.action === 'rollback') {
      const out = await this.api.json<any>(
        'POST',
        `models/${this.name}/rollback`,
        {},
        {
          to: `v${content.number}`,
          message: reason
        }
      );
      const where = out.deployment
        ? `; the deployment switched to it at ${out.deployment.url}`
        : '';
      message = `rolled back: ${this.name}@v${out.version.number} is a copy of ${spec}${where}`;
    } else if (content.action === 'stage') {
      const move = await this.api.json<any>(
        'POST',
        `versions/${spec}/stage`,
        {},
        {
          stage: content.stage,
          message: reason
        }
      );
      message = `${spec} moved ${move.from_stage} → ${move.to_stage}`;
    } else if (content.action === 'alias') {
      const alias = encodeURIComponent(content.alias ?? '');
      const change = await this.api.json<any>(
        'PUT',
        `models/${this.name}/aliases/${alias}`,
        {},
        {
          version: `v${content.number}`,
          message: reason
        }
      );
      message = `${change.name}@${change.alias}: ${change.old ? `v${change.old}` : '(none)'} -> v${change.new}`;
    } else {
      throw new Error(`unknown action ${content.action}: deploy, rollback, stage or alias`);
    }
    this.message({ kind: 'done', request: content.request, message });
    await this.patch(content.head);
    await this.select(content.number);
  }
}

/** The lifecycle graph, over REST: a click lists a stage's versions, choosing one places it. */
export class LifecycleModel extends RestModel {
  private etag = '';

  protected async changed(key: string, value: any): Promise<void> {
    if (key === 'focus' && value) {
      const { versions } = await this.api.get<{ versions: string[] }>(
        `models/${this.name}/stages/${encodeURIComponent(value)}`
      );
      this.set('stage_versions', { [value]: versions });
    } else if (key === 'version' && value && value !== this.state.picture?.version) {
      await this.place(value);
    }
  }

  private async place(version: string): Promise<void> {
    try {
      const picture = await this.api.get(`models/${this.name}/lifecycle`, {
        version: version.split('@')[1]
      });
      this.state.error = '';
      this.set('picture', picture);
    } catch (err) {
      this.set('error', err instanceof Error ? err.message : String(err));
    }
  }

  protected async handle(content: any): Promise<void> {
    if (content?.kind !== 'poll') {
      return;
    }
    const moved = await this.api.changed(this.etag);
    if (moved === null) {
      return;
    }
    const first = !this.etag;
    this.etag = moved;
    if (first) {
      return; // the first answer only sets the baseline
    }
    const version = this.state.picture?.version;
    const picture = await this.api.get(
      `models/${this.name}/lifecycle`,
      version ? { version: version.split('@')[1] } : {}
    );
    this.set('picture', picture);
    if (this.state.focus) {
      await this.changed('focus', this.state.focus);
    }
  }
}

/** The sparklines, over REST: new buckets since the last ones held, and the open alerts. */
export class SparklinesModel extends RestModel {
  protected async handle(content: any): Promise<void> {
    if (content?.kind !== 'poll') {
      return;
    }
    const series = this.state.series;
    const update = await this.api.get<any>(`models/${this.name}/series`, {
      window: series.window_s,
      step: series.step_s,
      since: series.until
    });
    if (update.t.length) {
      series.until = update.until;
      this.message({
        kind: 'points',
        t: update.t,
        columns: update.columns,
        version: update.version,
        // a canary's or shadow's columns over the same buckets (absent without a release)
        ...(update.challenger ? { challenger: update.challenger } : {})
      });
    }
    const { alerts } = await this.api.get<{ alerts: any[] }>(`models/${this.name}/alerts`);
    const open = alerts.map(a => ({ rule: a.rule, message: a.message }));
    if (JSON.stringify(open) !== JSON.stringify(this.state.alerts ?? [])) {
      this.set('alerts', open);
    }
  }
}
