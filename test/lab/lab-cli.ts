// Hand-run helper: npx vite-node test/lab/lab-cli.ts -- <command> [options]
//   image                         build (or find) the guest kernel + initramfs, print the paths
//   start [--hosts N] [--name X] [--addr-base B]
//                                 start a lab, print its hosts as JSON, hold it until SIGINT/SIGTERM
//   clean [--name X]              remove labs of that name whose owner process is gone
import { ensureGuestImage } from './guest-image.js';
import { cliOption as opt } from './exec.js';
import { cleanStaleLabs, startLab } from './lab.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  const cmd = args[0];
  switch (cmd) {
    case 'image': {
      console.log(JSON.stringify(await ensureGuestImage(), null, 2));
      return;
    }
    case 'clean': {
      cleanStaleLabs(opt(args, 'name', 'cli'));
      return;
    }
    case 'start': {
      const lab = await startLab({
        hosts: Number(opt(args, 'hosts', '2')),
        name: opt(args, 'name', 'cli'),
        addrBase: Number(opt(args, 'addr-base', '10')),
      });
      const hosts = lab.hosts.map(({ name, addr, uri, hostname, root, instancesPath, hostInstancesDir, libvirtdPid }) => ({
        name, addr, uri, hostname, root, instancesPath, hostInstancesDir, libvirtdPid,
      }));
      console.log(JSON.stringify({ root: lab.root, sharedDir: lab.sharedDir, hosts }, null, 2));
      console.log('ferry-lab ready');
      // Held until a signal: the lab's exit hooks tear it down.
      setInterval(() => undefined, 1 << 30);
      return;
    }
    default:
      console.error('usage: lab-cli.ts image | start [--hosts N] [--name X] | clean [--name X]');
      process.exitCode = 2;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
