/**
 * The CDK app (`cdk.json`: `node infra/app.ts`). One environment-agnostic stack; its name
 * (context `stackName`, default `Metalplane`) prefixes every physical name, so pick a
 * unique one per deployment (`cdk deploy -c stackName=metalplane-prod`): S3 bucket names
 * are global. The other context values (`metalplane:stage` = `dev` | `prod`, the
 * default; custom domain; log retention; throttling) are read by the stack and listed in
 * docs/deploy.md.
 */
import { App } from 'aws-cdk-lib';
import { MetalplaneStack } from './stack.ts';

const app = new App();
const stackName = String(app.node.tryGetContext('stackName') ?? 'Metalplane');

new MetalplaneStack(app, stackName, {
  stackName,
  description: 'Metalplane: serverless bare-metal provisioning control plane',
});
