"""Tests of what moto_server.py adds to moto, against the launcher itself on a port of its own.

Run with the interpreter that has the pinned moto (infra/local/bootstrap.sh installs it):
  .tools/venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'
"""

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.exceptions import ClientError

_HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(ready_path, environment=None):
    """moto_server.py on a port of its own, once it answers `ready_path`: the process and its
    endpoint."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, os.path.join(_HERE, "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}{ready_path}", timeout=1).close()
            return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto_server.py did not start: {server.communicate()[1].decode()}")
            time.sleep(0.2)


def _stop_server(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    server.stderr.close()


class MessageMoveTasks(unittest.TestCase):
    """SQS StartMessageMoveTask and ListMessageMoveTasks: a dead-letter queue's redrive."""

    @classmethod
    def setUpClass(cls):
        cls.server, cls.endpoint = _start_server("/moto-api/")
        cls.sqs = boto3.client(
            "sqs",
            endpoint_url=cls.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    @classmethod
    def tearDownClass(cls):
        _stop_server(cls.server)

    def queue(self, name, dead_letter_arn=None):
        """A new queue named after `name`, redriving after one receive to
        `dead_letter_arn` if given: its URL and ARN."""
        attributes = {"VisibilityTimeout": "0"}
        if dead_letter_arn:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 1}
            )
        url = self.sqs.create_queue(
            QueueName=f"{name}-{uuid.uuid4().hex[:12]}", Attributes=attributes
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return url, arn

    def receive(self, url):
        return self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])

    def dead_letter(self, url, body):
        """Sends `body` to the queue `url` and receives it until moto moves it to the queue's
        dead-letter queue, as it does on the receive after maxReceiveCount."""
        self.sqs.send_message(QueueUrl=url, MessageBody=body)
        self.assertEqual([m["Body"] for m in self.receive(url)], [body])
        self.assertEqual(self.receive(url), [])

    def test_a_message_put_in_a_dead_letter_queue_moves_to_the_destination(self):
        dlq_url, dlq_arn = self.queue("dlq")
        _, source_arn = self.queue("source", dlq_arn)
        destination_url, destination_arn = self.queue("destination")
        sent = self.sqs.send_message(
            QueueUrl=dlq_url,
            MessageBody='{"orderId": "01K"}',
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "oms.order.placed"}},
        )
        handle = self.sqs.start_message_move_task(
            SourceArn=dlq_arn, DestinationArn=destination_arn, MaxNumberOfMessagesPerSecond=10
        )["TaskHandle"]
        self.assertTrue(handle)

        self.assertEqual(self.receive(dlq_url), [])
        [moved] = self.receive(destination_url)
        self.assertEqual(moved["Body"], '{"orderId": "01K"}')
        self.assertEqual(moved["MessageAttributes"]["kind"]["StringValue"], "oms.order.placed")
        self.assertNotEqual(moved["MessageId"], sent["MessageId"])
        self.assertEqual(moved["Attributes"]["ApproximateReceiveCount"], "1")

        [task] = self.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        self.assertEqual(task["TaskHandle"], handle)
        self.assertEqual(task["Status"], "COMPLETED")
        self.assertEqual(task["SourceArn"], dlq_arn)
        self.assertEqual(task["DestinationArn"], destination_arn)
        self.assertEqual(task["ApproximateNumberOfMessagesMoved"], 1)
        self.assertEqual(task["ApproximateNumberOfMessagesToMove"], 1)
        self.assertLessEqual(abs(task["StartedTimestamp"] - time.time() * 1000), 60_000)
        self.assertNotEqual(source_arn, destination_arn)

    def test_without_a_destination_each_message_goes_back_where_it_was_dead_lettered_from(self):
        dlq_url, dlq_arn = self.queue("dlq")
        first_url, _ = self.queue("first", dlq_arn)
        second_url, _ = self.queue("second", dlq_arn)
        self.dead_letter(first_url, "from the first")
        self.dead_letter(second_url, "from the second")
        self.sqs.start_message_move_task(SourceArn=dlq_arn)

        self.assertEqual(self.receive(dlq_url), [])
        [first] = self.receive(first_url)
        [second] = self.receive(second_url)
        self.assertEqual(first["Body"], "from the first")
        self.assertEqual(second["Body"], "from the second")
        # The count starts over: one receive now, not the one that dead-lettered it.
        self.assertEqual(first["Attributes"]["ApproximateReceiveCount"], "1")
        [task] = self.sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
        self.assertNotIn("DestinationArn", task)
        self.assertEqual(task["ApproximateNumberOfMessagesMoved"], 2)

    def test_the_raw_json_protocol_the_rust_sdk_speaks(self):
        dlq_url, dlq_arn = self.queue("dlq")
        source_url, _ = self.queue("source", dlq_arn)
        self.sqs.send_message(QueueUrl=dlq_url, MessageBody="raw")
        status, answer = self.call("StartMessageMoveTask", {"SourceArn": dlq_arn})
        self.assertEqual(status, 200)
        self.assertEqual(list(answer), ["TaskHandle"])
        self.assertEqual([m["Body"] for m in self.receive(source_url)], ["raw"])
        status, answer = self.call("ListMessageMoveTasks", {"SourceArn": dlq_arn})
        self.assertEqual(status, 200)
        self.assertEqual(answer["Results"][0]["Status"], "COMPLETED")

    def test_an_unknown_source_or_one_no_queue_redrives_to_is_refused(self):
        status, answer = self.call(
            "StartMessageMoveTask", {"SourceArn": "arn:aws:sqs:us-east-1:123456789012:no-such-queue"}
        )
        self.assertEqual(status, 400)
        self.assertIn("ResourceNotFoundException", answer["__type"])
        _, lone_arn = self.queue("lone")
        with self.assertRaises(ClientError) as refused:
            self.sqs.start_message_move_task(SourceArn=lone_arn)
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterValue")
        self.assertIn("Dead Letter Queue", refused.exception.response["Error"]["Message"])
        dlq_url, dlq_arn = self.queue("dlq")
        self.queue("source", dlq_arn)
        with self.assertRaises(ClientError) as refused:
            self.sqs.start_message_move_task(
                SourceArn=dlq_arn, DestinationArn="arn:aws:sqs:us-east-1:123456789012:nowhere"
            )
        self.assertEqual(refused.exception.response["Error"]["Code"], "ResourceNotFoundException")

    def call(self, action, body):
        """An SQS action as the AWS JSON 1.0 protocol sends it: its status and JSON answer."""
        request = urllib.request.Request(
            f"{self.endpoint}/",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"AmazonSQS.{action}",
                "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/sqs/"
                "aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


if __name__ == "__main__":
    unittest.main()


class Faults(unittest.TestCase):
    """The fault switches: every call of a function faulted (share 1), nobody else's."""

    @classmethod
    def setUpClass(cls):
        environment = dict(
            os.environ,
            OMS_FAULT_DYNAMODB_THROTTLE="1",
            OMS_FAULT_TRANSACTION_CONFLICT="1",
            OMS_FAULT_SNS_ENTRY_FAILURE="1",
        )
        cls.server, cls.endpoint = _start_server("/_faults", environment)

    @classmethod
    def tearDownClass(cls):
        _stop_server(cls.server)

    def client(self, service, app=None):
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(user_agent_appid=app, retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def injected(self):
        with urllib.request.urlopen(f"{self.endpoint}/_faults") as answer:
            return json.load(answer)["injected"]

    def test_a_functions_calls_fail_and_change_nothing_while_others_pass(self):
        tools = self.client("dynamodb", app="oms-system-tests")
        table = f"faults-{uuid.uuid4().hex[:8]}"
        tools.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        function = self.client("dynamodb", app="order-intake")
        before = self.injected()
        with self.assertRaises(ClientError) as throttled:
            function.put_item(TableName=table, Item={"pk": {"S": "a"}})
        self.assertEqual(
            throttled.exception.response["Error"]["Code"], "ProvisionedThroughputExceededException"
        )
        with self.assertRaises(ClientError) as conflicted:
            function.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "b"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": "c"}}}},
            ])
        self.assertEqual(conflicted.exception.response["Error"]["Code"], "TransactionCanceledException")
        self.assertEqual(
            [r["Code"] for r in conflicted.exception.response["CancellationReasons"]],
            ["TransactionConflict", "TransactionConflict"],
        )
        self.assertEqual(tools.scan(TableName=table)["Items"], [], "nothing was written")
        tools.put_item(TableName=table, Item={"pk": {"S": "d"}})
        after = self.injected()
        self.assertEqual(after["dynamodb_throttle"] - before["dynamodb_throttle"], 1)
        self.assertEqual(after["transaction_conflict"] - before["transaction_conflict"], 1)

    def test_a_functions_publish_batch_entries_fail_one_by_one(self):
        tools = self.client("sns", app="oms-local")
        topic = tools.create_topic(Name=f"faults-{uuid.uuid4().hex[:8]}")["TopicArn"]
        function = self.client("sns", app="event-publisher")
        answer = function.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[{"Id": "1", "Message": "one"}, {"Id": "2", "Message": "two"}],
        )
        self.assertEqual(answer.get("Successful", []), [])
        self.assertEqual(
            [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]],
            [("1", "InternalFailure", False), ("2", "InternalFailure", False)],
        )
        answer = tools.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": "1", "Message": "one"}])
        self.assertEqual([s["Id"] for s in answer["Successful"]], ["1"])
