// Errors as Kubernetes `Status` objects (meta/v1), the error body kube-apiserver returns.
// Each error carries a stable `code` (APISERVER_ERR_*) for our logs and the HTTP status for the wire.

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export const ApiErrorCode = {
  BadRequest: 'APISERVER_ERR_BAD_REQUEST',
  Unauthorized: 'APISERVER_ERR_UNAUTHORIZED',
  NotFound: 'APISERVER_ERR_NOT_FOUND',
  MethodNotAllowed: 'APISERVER_ERR_METHOD_NOT_ALLOWED',
  AlreadyExists: 'APISERVER_ERR_ALREADY_EXISTS',
  Conflict: 'APISERVER_ERR_CONFLICT',
  Gone: 'APISERVER_ERR_GONE',
  RequestEntityTooLarge: 'APISERVER_ERR_TOO_LARGE',
  UnsupportedMediaType: 'APISERVER_ERR_UNSUPPORTED_MEDIA_TYPE',
  Invalid: 'APISERVER_ERR_INVALID',
  Internal: 'APISERVER_ERR_INTERNAL',
} as const;
export type ApiErrorCode = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

/** An error that is answered as a `Status` body with HTTP status `httpCode`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    readonly httpCode: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toStatus(): Status {
    return failureStatus(this.httpCode, this.reason, this.message, this.details);
  }
}

export function failureStatus(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
): Status {
  const s: Status = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) s.details = details;
  return s;
}

export function successStatus(details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 200 };
  if (details) s.details = details;
  return s;
}

/** A resource, as Status details name it: the plural resource name and its group. */
export interface ResourceRef {
  group: string;
  resource: string;
}

const qualified = (r: ResourceRef) => (r.group ? `${r.resource}.${r.group}` : r.resource);

export const errors = {
  badRequest: (message: string) => new ApiError(ApiErrorCode.BadRequest, 400, 'BadRequest', message),
  unauthorized: () => new ApiError(ApiErrorCode.Unauthorized, 401, 'Unauthorized', 'Unauthorized'),
  notFound: (r: ResourceRef, name: string) =>
    new ApiError(ApiErrorCode.NotFound, 404, 'NotFound', `${qualified(r)} "${name}" not found`, {
      name,
      group: r.group,
      kind: r.resource,
    }),
  pathNotFound: () =>
    new ApiError(
      ApiErrorCode.NotFound,
      404,
      'NotFound',
      'the server could not find the requested resource',
      {},
    ),
  methodNotAllowed: (method: string) =>
    new ApiError(
      ApiErrorCode.MethodNotAllowed,
      405,
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource: ${method}`,
      {},
    ),
  alreadyExists: (r: ResourceRef, name: string) =>
    new ApiError(
      ApiErrorCode.AlreadyExists,
      409,
      'AlreadyExists',
      `${qualified(r)} "${name}" already exists`,
      {
        name,
        group: r.group,
        kind: r.resource,
      },
    ),
  conflict: (r: ResourceRef, name: string, why: string) =>
    new ApiError(
      ApiErrorCode.Conflict,
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`,
      { name, group: r.group, kind: r.resource },
    ),
  gone: (message: string) => new ApiError(ApiErrorCode.Gone, 410, 'Expired', message),
  tooLarge: (limit: number) =>
    new ApiError(
      ApiErrorCode.RequestEntityTooLarge,
      413,
      'RequestEntityTooLarge',
      `the request body is larger than ${limit} bytes`,
    ),
  unsupportedMediaType: (type: string) =>
    new ApiError(
      ApiErrorCode.UnsupportedMediaType,
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "${type}")`,
    ),
  invalid: (kind: string, group: string, name: string, causes: StatusCause[]) =>
    new ApiError(
      ApiErrorCode.Invalid,
      422,
      'Invalid',
      `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${causes
        .map((c) => (c.field ? `${c.field}: ${c.message}` : c.message))
        .join(', ')}`,
      { name, group, kind, causes },
    ),
  unprocessable: (message: string) => new ApiError(ApiErrorCode.Invalid, 422, 'Invalid', message),
  internal: (message: string, cause?: unknown) =>
    new ApiError(ApiErrorCode.Internal, 500, 'InternalError', message, {}, { cause }),
};

/** Field-level validation problems, in the shape Status causes use. */
export const causes = {
  required: (field: string, detail?: string): StatusCause => ({
    reason: 'FieldValueRequired',
    message: detail ? `Required value: ${detail}` : 'Required value',
    field,
  }),
  invalid: (field: string, value: unknown, why: string): StatusCause => ({
    reason: 'FieldValueInvalid',
    message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
    field,
  }),
  unsupported: (field: string, value: unknown, allowed: readonly unknown[]): StatusCause => ({
    reason: 'FieldValueNotSupported',
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
    field,
  }),
  typeInvalid: (field: string, value: unknown, want: string): StatusCause => ({
    reason: 'FieldValueTypeInvalid',
    message: `Invalid value: ${JSON.stringify(value)}: ${field} in body must be of type ${want}`,
    field,
  }),
  duplicate: (field: string, value: unknown): StatusCause => ({
    reason: 'FieldValueDuplicate',
    message: `Duplicate value: ${JSON.stringify(value)}`,
    field,
  }),
  tooMany: (field: string, actual: number, max: number): StatusCause => ({
    reason: 'FieldValueTooMany',
    message: `Too many: ${actual}: must have at most ${max} items`,
    field,
  }),
  forbidden: (field: string, why: string): StatusCause => ({
    reason: 'FieldValueForbidden',
    message: `Forbidden: ${why}`,
    field,
  }),
};
