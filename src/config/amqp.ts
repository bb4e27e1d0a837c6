// The RabbitMQ connection as [oslo_messaging_rabbit] describes it, for every
// program that talks to the broker (ferryd, ferryctl, the test conductor).

import type { AmqpConnectionOptions } from '../broker/amqp-connection.js';
import type { Logger } from '../log/logger.js';
import type { FerryConfig } from './types.js';

export function amqpOptions(config: FerryConfig, connectionName: string, logger: Logger): AmqpConnectionOptions {
  const r = config.oslo_messaging_rabbit;
  return {
    transportUrl: config.transport_url,
    connectionName,
    heartbeatThreshold: r.heartbeat_timeout_threshold,
    retryInterval: r.rabbit_retry_interval,
    retryBackoff: r.rabbit_retry_backoff,
    retryMax: r.rabbit_interval_max,
    tls: { ca: r.ssl_ca_file ?? undefined, cert: r.ssl_cert_file ?? undefined, key: r.ssl_key_file ?? undefined },
    logger,
  };
}
