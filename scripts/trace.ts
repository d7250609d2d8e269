/**
 * `npm run trace -- JOB_ID [--config PATH] [--data-dir DIR] [--json]`: prints the flight recorder's
 * timeline of a job from the database the server would use (see database-target.ts): each state the job
 * went through, how long it stayed there, and the event that left it. Only state names and event types
 * are recorded, never a message. An unknown job or a database that cannot be opened: one sentence, exit 1.
 */
import { createJobStore } from '../src/actors/store/job-store.js';
import { toTimeline, type TimelineEntry } from '../src/jobs/job-trace.js';
import { databaseTarget, exitWith, openTarget, parseScriptArgs, reasonOf } from './database-target.js';

const HELP = `Usage: npm run trace -- JOB_ID [--config PATH] [--data-dir DIR] [--json]

Prints the timeline of a job (the flight recorder): each state its job actor went through, how long it
stayed there and the event that left it, from the database the server would use: database.url (or
DATABASE_URL) from the config, else the embedded database in database.dataDir. The embedded database can
be read only while the gateway is stopped (GET /jobs/JOB_ID/trace asks a running one).

Options:
  -c, --config PATH   the config file (default: ./switchboard.config.json when it exists)
      --data-dir DIR  the embedded database in DIR, whatever the config says
      --json          print the timeline as JSON (the body of GET /jobs/JOB_ID/trace)
  -h, --help          print this help and exit`;

const { values, positionals } = parseScriptArgs(
  'trace',
  HELP,
  { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  true,
);
if (positionals.length !== 1) {
  process.stderr.write(`trace: ${positionals.length === 0 ? 'name the job: npm run trace -- JOB_ID' : 'one job id at a time'}\n\n${HELP}\n`);
  process.exit(2);
}
const jobId = positionals[0]!;
const target = databaseTarget({ config: values.config, dataDir: values['data-dir'] });
const database = await openTarget(target, 'trace');
let found;
try {
  found = await createJobStore(database.db).getJobTrace(jobId);
} catch (error) {
  await database.close().catch(() => undefined);
  exitWith('trace', `${target.where}: ${reasonOf(error)}`);
}
await database.close();
if (found === null) exitWith('trace', `no job ${JSON.stringify(jobId)} in ${target.where}`);

const transitions = toTimeline(found.steps);
if (values.json) {
  console.log(JSON.stringify({ jobId, status: found.status, transitions }, null, 2));
} else {
  console.log(formatTimeline(jobId, found.status, transitions));
}

/** The timeline as aligned lines: offset from the start, state, time spent in it, the event that left it. */
function formatTimeline(id: string, status: string, entries: readonly TimelineEntry[]): string {
  if (entries.length === 0) return `job ${id} (${status}): no transitions were recorded (it ran before the flight recorder, or was interrupted)`;
  const start = Date.parse(entries[0]!.at);
  const total = Date.parse(entries.at(-1)!.at) - start;
  const offsets = entries.map((entry) => `+${Date.parse(entry.at) - start} ms`);
  const durations = entries.map((entry) => (entry.ms === null ? (status === 'running' ? 'now' : 'final') : `${entry.ms} ms`));
  const offsetWidth = Math.max(...offsets.map((text) => text.length));
  const stateWidth = Math.max(...entries.map((entry) => entry.state.length));
  const durationWidth = Math.max(...durations.map((text) => text.length));
  const lines = entries.map((entry, index) => {
    const left = entry.leftOn === null ? '' : `  → ${entry.leftOn}`;
    return `  ${offsets[index]!.padStart(offsetWidth)}  ${entry.state.padEnd(stateWidth)}  ${durations[index]!.padStart(durationWidth)}${left}`;
  });
  return [`job ${id} (${status}), ${entries.length} states in ${total} ms, from ${entries[0]!.at}:`, ...lines].join('\n');
}
