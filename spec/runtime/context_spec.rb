# frozen_string_literal: true

require "spec_helper"

# The one Lambda context class: the native loop's Ruby handler and every local run get one.
RSpec.describe Megamode::Context do
  def now_ms = Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond)

  it "answers every method of Lambda's Ruby context, and the trace id" do
    ctx = described_class.new(aws_request_id: "r", deadline_ms: (now_ms + 5000).to_i, function_name: "f",
                              memory_limit_in_mb: "1024", identity: { "cognitoIdentityId" => "i" },
                              client_context: { "custom" => {} }, tenant_id: "t", trace_id: "Root=1-x")

    expect(ctx.get_remaining_time_in_millis).to be_between(4000, 5000)
    expect(ctx.get_remaining_time_in_millis).to be_an(Integer)
    expect([ctx.aws_request_id, ctx.function_name, ctx.memory_limit_in_mb, ctx.tenant_id, ctx.trace_id])
      .to eq(["r", "f", "1024", "t", "Root=1-x"])
    expect([ctx.identity, ctx.client_context]).to eq([{ "cognitoIdentityId" => "i" }, { "custom" => {} }])
    expect([ctx.invoked_function_arn, ctx.function_version, ctx.log_group_name, ctx.log_stream_name]).to all(be_nil)
  end

  it "counts down to zero, never below, and keeps an infinite deadline infinite" do
    expect(described_class.new(aws_request_id: "r", deadline_ms: now_ms - 1000).get_remaining_time_in_millis).to eq(0)
    expect(described_class.new(aws_request_id: "r", deadline_ms: Float::INFINITY).get_remaining_time_in_millis)
      .to eq(Float::INFINITY)
    expect(context(timeout: Float::MAX).get_remaining_time_in_millis).to eq(Float::INFINITY)
  end

  it "refuses a field Lambda's context does not have" do
    expect { described_class.new(aws_request_id: "r", deadline_ms: 0, function: "f") }
      .to raise_error(ArgumentError, /unknown Lambda context fields: function/)
  end
end
