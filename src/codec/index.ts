// The codec's public surface: binary encoding of Raft messages, and the one
// error it raises on malformed input. See message.ts for the wire layout.

export { CodecError } from './errors.js';
export { decodeMessage, encodeMessage, MESSAGE_TYPES } from './message.js';
export { decodeConfiguration, encodeConfiguration } from './configuration.js';
