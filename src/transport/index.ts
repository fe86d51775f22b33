// The transport layer's public surface: the Transport contract, the TCP/TLS
// implementation for real nodes, and the in-memory one for runtime tests.

export type { PeerFrame, PeerStats, Transport, TransportStats } from './types.js';
export {
  DEFAULT_MAX_FRAME_BYTES, DEFAULT_SEND_QUEUE_MAX_BYTES, TcpTransport, TransportListenError,
  type HostPort, type TcpTransportOptions,
} from './tcp.js';
export { MemoryNetwork, MemoryTransport, type MemoryTransportOptions } from './memory.js';
export { FrameError } from './frame.js';
