// ferry's configuration, shaped like nova.conf: top-level [DEFAULT] options,
// then the [libvirt] and [compute] sections ferry honours.

import type { CONVERGENCE_POLICIES, TIMEOUT_ACTIONS } from './schema.js';

/** What the completion timeout does: Nova's live_migration_timeout_action. */
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LibvirtConfig {
  connection_uri: string;
  virt_type: 'kvm' | 'qemu';
  /** The first is the guests' CPU model (custom mode); empty: the hypervisor's default. */
  cpu_models: string[];
  /** seconds */
  keepalive_interval: number;
  keepalive_count: number;
  /** null -> tcp */
  live_migration_scheme: string | null;
  /** becomes migrate_data.target_connect_addr */
  live_migration_inbound_addr: string | null;
  /** MiB/s, 0 = unlimited */
  live_migration_bandwidth: number;
  /** MiB/s, 0 = unknown */
  live_migration_link_bandwidth: number;
  /** MiB/s once post-copy started, 0 = unlimited */
  live_migration_bandwidth_postcopy: number;
  /** ms */
  live_migration_downtime: number;
  live_migration_downtime_steps: number;
  /** seconds per GiB */
  live_migration_downtime_delay: number;
  /** seconds per GiB, 0 = off */
  live_migration_completion_timeout: number;
  live_migration_timeout_action: TimeoutAction;
  convergence_policy: (typeof CONVERGENCE_POLICIES)[number];
  /** seconds */
  convergence_stall_window: number;
  convergence_act_on_stall: boolean;
  live_migration_permit_post_copy: boolean;
  live_migration_permit_auto_converge: boolean;
  live_migration_with_native_tls: boolean;
  live_migration_parallel_connections: number;
  /** seconds between progress saves */
  live_migration_monitor_interval: number;
  /** a disk whose backing image this host lacks may be copied whole */
  live_migration_allow_full_disk_copy: boolean;
}

export interface ComputeConfig {
  /** 0 = unlimited */
  max_concurrent_live_migrations: number;
  live_migrate_rescued: boolean;
}

/** Where the consoles of arriving guests listen (Nova's [vnc]/[spice] server_listen, [serial_console] proxyclient_address); null keeps each guest's. */
export interface ConsoleListenConfig {
  vnc: { server_listen: string | null };
  spice: { server_listen: string | null };
  serial_console: SerialConsoleConfig;
}

/** Nova's [serial_console]: guests spawned here get a TCP console when enabled; arriving guests' consoles move to proxyclient_address. */
export interface SerialConsoleConfig {
  enabled: boolean;
  /** 'min:max' (parsePortRange) */
  port_range: string;
  proxyclient_address: string | null;
}

export interface MetricsConfig {
  listen_address: string;
  /** 0 = metrics endpoint off */
  port: number;
}

/** Nova's [oslo_messaging_rabbit] options ferry honours. */
export interface RabbitConfig {
  heartbeat_timeout_threshold: number;
  rabbit_retry_interval: number;
  rabbit_retry_backoff: number;
  rabbit_interval_max: number;
  ssl_ca_file: string | null;
  ssl_cert_file: string | null;
  ssl_key_file: string | null;
}

export interface FerryConfig extends ConsoleListenConfig {
  host: string;
  transport_url: string;
  control_exchange: string;
  rpc_response_timeout: number;
  long_rpc_timeout: number;
  instances_path: string;
  /** absolute; ferryd's own files that must survive a restart */
  state_path: string;
  finished_migration_keep_seconds: number;
  incoming_migration_grace_seconds: number;
  shutdown_grace_seconds: number;
  conductor_topic: string;
  image_cache_path: string;
  use_cow_images: boolean;
  force_raw_images: boolean;
  mkisofs_cmd: string;
  shutdown_timeout: number;
  management_roles: string[];
  service_roles: string[];
  max_message_bytes: number;
  executor_thread_pool_size: number;
  metrics: MetricsConfig;
  log_level: LogLevel;
  libvirt: LibvirtConfig;
  compute: ComputeConfig;
  oslo_messaging_rabbit: RabbitConfig;
}
