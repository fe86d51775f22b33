// A worker thread that runs a batch of seeds for the sim CLI.
import { parentPort, workerData } from 'node:worker_threads';
import { runBatch } from './cli.js';

const { from, count, modes, bug } = workerData as { from: number; count: number; modes: ('push' | 'pull')[]; bug?: never };
parentPort?.postMessage(runBatch(from, count, modes, bug, (progress) => parentPort?.postMessage({ progress })));
