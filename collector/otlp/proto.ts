// Protobuf codecs for OTLP/HTTP, built with protobufjs from the project's own otlp.proto.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { packageRoot } from '../../common/package-root';

const root = protobuf.parse(readFileSync(join(packageRoot(), 'collector', 'proto', 'otlp.proto'), 'utf8'), {
  keepCase: false,
}).root;

function type(name: string): protobuf.Type {
  return root.lookupType(`stallscope.otlp.${name}`);
}

export const TraceRequest = type('ExportTraceServiceRequest');
export const MetricsRequest = type('ExportMetricsServiceRequest');
export const LogsRequest = type('ExportLogsServiceRequest');
const ExportResponse = type('ExportServiceResponse');
const RpcStatus = type('RpcStatus');

/** Encoded export response: empty on full success, partial_success when items were rejected. */
export function encodeExportResponse(rejected: number, errorMessage: string): Uint8Array {
  const body = rejected > 0 || errorMessage ? { partialSuccess: { rejected, errorMessage } } : {};
  return ExportResponse.encode(ExportResponse.fromObject(body)).finish();
}

/** google.rpc.Status; `code` is a gRPC status code (3 invalid argument, 8 resource exhausted...). */
export function encodeRpcStatus(code: number, message: string): Uint8Array {
  return RpcStatus.encode(RpcStatus.fromObject({ code, message })).finish();
}

/** How deep protobufjs decodes nested messages before it gives up on a request. */
export const PROTOBUF_DEPTH = protobuf.Reader.recursionLimit;
