// A typed client of the metadata gRPC service, for the CLI, tests and
// applications that write records without embedding a broker. Writes try the
// endpoints in order until one answers (a definite answer — accepted or
// rejected — is never retried elsewhere); a rejection comes back as
// MetadataRejectedError with its code.

import * as grpc from '@grpc/grpc-js';
import type { MetadataImage } from '../../services/metadata/image.js';
import { MetadataRejectedError, type AcceptedRecord, type MetadataErrorCode, type MetadataRecord } from '../../services/metadata/types.js';
import { imageFromWire, recordFromWire, recordToWire, type WireImage, type WireRecord } from './convert.js';
import { METADATA_ERROR_TRAILER, metadataServiceClient } from './service.js';

/** What a Follow stream delivers. */
export type FollowEvent =
  | { readonly type: 'record'; readonly offset: number; readonly index: number; readonly record: MetadataRecord }
  | { readonly type: 'image'; readonly image: MetadataImage };

type Cb<T> = (err: grpc.ServiceError | null, res: T) => void;
interface RawClient extends grpc.Client {
  Write(req: object, opts: grpc.CallOptions, cb: Cb<{ offset: number; index: number; record: WireRecord }>): void;
  GetImage(req: object, opts: grpc.CallOptions, cb: Cb<WireImage>): void;
  Follow(req: object): grpc.ClientReadableStream<{ event?: string; record?: { offset: number; index: number; record: WireRecord } | null; image?: WireImage | null }>;
}

/** The error a failed call becomes: MetadataRejectedError for a rejection, else the gRPC error. */
function translate(err: grpc.ServiceError): Error {
  const code = err.metadata?.get(METADATA_ERROR_TRAILER)[0];
  if (err.code === grpc.status.FAILED_PRECONDITION && typeof code === 'string') {
    const message = (err.details ?? err.message).replace(/^metadata: [A-Za-z]+: /, '');
    return new MetadataRejectedError({ error: code as MetadataErrorCode, message }, { cause: err });
  }
  return err;
}

export class MetadataClient {
  private readonly clients: RawClient[];

  /** `clientOptions`: grpc-js options of every channel (e.g. an interceptor that sends an etcd auth `token` with each call). */
  constructor(endpoints: readonly string[], private readonly timeoutMs = 10_000, credentials = grpc.credentials.createInsecure(), clientOptions: grpc.ClientOptions = {}) {
    if (endpoints.length === 0) throw new RangeError('no endpoints given');
    const Ctor = metadataServiceClient();
    this.clients = endpoints.map((e) => new Ctor(e, credentials, clientOptions) as unknown as RawClient);
  }

  /** Appends a record; resolves with where it landed. */
  async write(record: MetadataRecord): Promise<AcceptedRecord> {
    const res = await this.call((c, opts, cb: Cb<{ offset: number; index: number; record: WireRecord }>) => c.Write({ record: recordToWire(record) }, opts, cb));
    return { offset: Number(res.offset), index: Number(res.index), record: recordFromWire(res.record) };
  }

  /** The image of the first endpoint that answers. */
  async image(serializable = false): Promise<MetadataImage> {
    return imageFromWire(await this.call((c, opts, cb: Cb<WireImage>) => c.GetImage({ serializable }, opts, cb)));
  }

  /** Follows the log from `fromOffset` on the first endpoint; returns a function that cancels the stream. */
  follow(fromOffset: number, onEvent: (e: FollowEvent) => void, onEnd: (err: Error | null) => void, endpoint = 0): () => void {
    const client = this.clients[endpoint];
    if (client === undefined) throw new RangeError(`no endpoint ${endpoint}`);
    const stream = client.Follow({ from_offset: fromOffset });
    let done = false;
    stream.on('data', (m: { record?: { offset: number; index: number; record: WireRecord } | null; image?: WireImage | null }) => {
      try {
        if (m.record != null) onEvent({ type: 'record', offset: Number(m.record.offset), index: Number(m.record.index), record: recordFromWire(m.record.record) });
        else if (m.image != null) onEvent({ type: 'image', image: imageFromWire(m.image) });
      } catch (e) {
        done = true;
        stream.cancel();
        onEnd(e as Error);
      }
    });
    stream.on('error', (e: grpc.ServiceError) => {
      if (done) return;
      done = true;
      onEnd(e.code === grpc.status.CANCELLED ? null : translate(e));
    });
    stream.on('end', () => {
      if (done) return;
      done = true;
      onEnd(null);
    });
    return () => {
      if (!done) stream.cancel();
    };
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  private async call<T>(fn: (c: RawClient, opts: grpc.CallOptions, cb: Cb<T>) => void): Promise<T> {
    let last: Error | null = null;
    for (const c of this.clients) {
      try {
        return await new Promise<T>((resolve, reject) => fn(c, { deadline: Date.now() + this.timeoutMs }, (err, res) => (err !== null ? reject(err) : resolve(res))));
      } catch (e) {
        const err = e as grpc.ServiceError;
        last = translate(err);
        if (err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.DEADLINE_EXCEEDED && err.code !== grpc.status.UNIMPLEMENTED) throw last;
      }
    }
    throw last ?? new Error('no endpoints given');
  }
}
