// The AWS SDK clients of the adapters, built once per Lambda container and shared by every invocation.
//
// No option is set on purpose: each client then takes its region, endpoint and retry settings from the
// standard SDK environment (AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, AWS_MAX_ATTEMPTS,
// AWS_RETRY_MODE) and otherwise uses the SDK's standard retry strategy: 3 attempts (4 for DynamoDB, the
// DynamoDB client's own default), with exponential backoff and jitter, for throttling and transient errors.
// https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SQSClient } from "@aws-sdk/client-sqs";
import { SSMClient } from "@aws-sdk/client-ssm";

export const ec2 = new EC2Client({});
export const autoScaling = new AutoScalingClient({});
export const ssm = new SSMClient({});
export const cloudWatch = new CloudWatchClient({});
export const sqs = new SQSClient({});
export const dynamodb = new DynamoDBClient({});
/** EventBridge Scheduler: the lab's one pending requeue (functions/aws/requeue.ts). */
export const scheduler = new SchedulerClient({});

/** Every client, for code that treats them alike (a benchmark adding a middleware to count calls). */
export const clients = [ec2, autoScaling, ssm, cloudWatch, sqs, dynamodb, scheduler] as const;
