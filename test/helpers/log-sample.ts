/** Writes one log line through the gateway's logger, for the log format test (run as a child process). */
import { createLogger } from '../../src/log.js';

const log = createLogger({ level: 'info' });
log.info({ healthMs: 3 }, 'backend up (http://127.0.0.1:1/v1)');
log.flush();
