import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';

/** Counts INSERT statements through a kysely instance (a CTE of inserts is one statement: its root is the last INSERT). */
export class InsertCounter implements KyselyPlugin {
  inserts = 0;
  transformQuery(args: PluginTransformQueryArgs): PluginTransformQueryArgs['node'] {
    if (args.node.kind === 'InsertQueryNode') this.inserts += 1;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<PluginTransformResultArgs['result']> {
    return args.result;
  }
}
