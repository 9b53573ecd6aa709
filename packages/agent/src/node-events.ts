// Reports bad podnet.io/* annotations on this agent's own Node: a log line and a Warning Event on
// the Node when the set of problems changes (a Normal Event once they are fixed). The agent writes
// only what its node owns, and Node.status.conditions belong to the kubelet (and the few condition
// types other controllers own), so nothing is written there: see docs/conditions.md.
import { coreSource, Informer, type KubeClient } from '@podnet/k8s';
import type { Logger } from 'pino';
import { nodeAnnotationProblems } from './conditions.js';
import type { EventRecorder } from './events.js';

interface CoreNode {
  metadata?: { name?: string; uid?: string; annotations?: Record<string, string> };
}

export interface NodeAnnotationReporterOptions {
  client: KubeClient;
  nodeName: string;
  recorder: EventRecorder;
  logger?: Logger;
}

export class NodeAnnotationReporter {
  private readonly inf: Informer<CoreNode>;
  private readonly log: Logger | undefined;
  private last: string[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: NodeAnnotationReporterOptions) {
    this.log = o.logger?.child({ component: 'node-annotations', node: o.nodeName });
    this.inf = new Informer<CoreNode>(o.client, coreSource(o.client, 'Node'), {
      fieldSelector: `metadata.name=${o.nodeName}`,
      initialBackoffMs: 200,
      maxBackoffMs: 5000,
      ...(o.logger ? { logger: o.logger } : {}),
    });
  }

  /** The problems last reported ([] when the annotations are fine). */
  problems(): string[] {
    return this.last;
  }

  start(): void {
    this.inf.on(() => this.check());
    this.inf.start();
  }

  async stop(): Promise<void> {
    await this.inf.stop();
    await this.queue;
  }

  private check() {
    const node = this.inf.get(this.o.nodeName);
    if (!node) return;
    const problems = nodeAnnotationProblems(node.metadata?.annotations);
    if (problems.join('\n') === this.last.join('\n')) return;
    const fixed = problems.length === 0;
    this.last = problems;
    for (const p of problems) this.log?.warn({ problem: p }, 'invalid Node annotation ignored');
    if (fixed) this.log?.info('Node annotations valid again');
    const obj = {
      apiVersion: 'v1',
      kind: 'Node',
      name: this.o.nodeName,
      ...(node.metadata?.uid ? { uid: node.metadata.uid } : {}),
    };
    this.queue = this.queue.then(() =>
      fixed
        ? this.o.recorder.record(obj, 'Normal', 'AnnotationsValid', 'podnet.io annotations are valid again')
        : this.o.recorder.record(obj, 'Warning', 'InvalidAnnotation', problems.join('; ')),
    );
  }
}
