# frozen_string_literal: true

require "digest"
require "shellwords"
require_relative "image"

module Megamode
  class Build
    # The files the build writes into the package, as text, and how it recognises its own.
    module Files
      # The file that marks a directory as a package megamode made (and a zip as its zip: the
      # package's first entry), so that a later build may replace it.
      PACKAGE_MARKER = ".megamode-package"
      PACKAGE_FORMAT = 1
      # The first line of a template megamode wrote, with the digest of the lines after it.
      TEMPLATE_STAMP = /\A# Written by megamode build \S+ \(sha256 (\h{64})\)/

      module_function

      # The first line is the format; later lines are for people (the target is in megamode/target.json).
      def package_marker(version, target: nil)
        text = <<~TEXT
          megamode package, format #{PACKAGE_FORMAT}
          Written by megamode build #{version}. The next build into this directory replaces it whole.
        TEXT
        return text unless target

        for_what = target.local? ? "local runs only (Ruby #{target.ruby}, #{target.arch})" : "Lambda's #{target}"
        "#{text}For #{for_what}.\n"
      end

      def package_marker?(text)
        text.match?(/\Amegamode package, format \d+\n/)
      end

      # Whether `text` is a template as megamode wrote it: stamped, and not edited since.
      def own_template?(text)
        first, rest = text.split("\n", 2)
        digest = first.to_s[TEMPLATE_STAMP, 1]
        !digest.nil? && digest == Digest::SHA256.hexdigest(rest.to_s)
      end

      # Lambda's Ruby runtime loads this at init (_HANDLER=handler.handler) and calls `handler` per
      # event. Booting here overlaps the app's boot with Lambda's init phase. `local`: what a package
      # built for local runs only says when it is loaded.
      def handler_rb(local: nil)
        warning = local ? "warn #{local.inspect}\n" : ""
        <<~RUBY
          # frozen_string_literal: true

          # Written by megamode build. Lambda's Ruby runtime loads this file at init
          # (Handler: handler.handler) and calls `handler` for every event.
          #{warning}$LOAD_PATH.unshift(File.join(__dir__, "megamode", "lib"))
          require "megamode"

          if ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
            # SnapStart: Lambda's Ruby runtime client leaves the lifecycle to the image, so this
            # runs it while the client loads this file: the server ready, MEGAMODE_PRIME's paths
            # asked for, the app's before-snapshot hooks, restore/next (the snapshot), then the
            # after-restore hooks; the client goes on to its first event after a restore. The image
            # has no com.amazonaws.lambda.feature.snapstart label on purpose: with it Lambda would
            # snapshot at the client's first /next, with no hooks run. An init failure is raised
            # for the client to report as the init error.
            begin
              Megamode.boot
              Megamode.snap_start
            rescue Megamode::RestoreError
              # Posted on restore/error (and said in the log) already; Lambda discards this
              # environment. exit!, not exit: the client rescues anything loading this file
              # raises, SystemExit too, and would report an init error after the restore's.
              Megamode.shutdown
              $stdout.flush
              $stderr.flush
              exit!(1)
            end
          else
            begin
              Megamode.boot
              # Provisioned concurrency initializes ahead of traffic (130 s or more for init, not 10)
              # and freezes the environment until its first event: the server boots to ready now.
              Megamode.wait_ready if ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
            rescue Megamode::Error => e
              # The first invocation tries again and returns the error; the log says why now.
              warn "megamode: init: \#{e.class}: \#{e.message}"
            end
          end

          def handler(event:, context:)
            Megamode.handler(event: event, context: context)
          end
        RUBY
      end

      # The exec wrapper for the native Runtime API loop: with AWS_LAMBDA_EXEC_WRAPPER pointing here,
      # Lambda runs this instead of its Ruby runtime client (whose command it passes as arguments,
      # unused), and megamode's core serves every event with no Ruby per request.
      # `local`: what a package built for local runs only says when it starts, as handler.rb does.
      def runtime_wrapper(local: nil)
        warning = local ? "printf '%s\\n' #{Shellwords.escape(local)} >&2\n" : ""
        <<~SH
          #!/bin/sh
          # Written by megamode build. Set AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime to run
          # megamode's native Runtime API loop instead of Lambda's Ruby runtime client and handler.rb.
          #{warning}exec ruby -I"${LAMBDA_TASK_ROOT:-/var/task}/megamode/lib" -e 'require "megamode/runtime"; Megamode::Runtime.start'
        SH
      end

      def initializer_rb(version)
        <<~RUBY
          # frozen_string_literal: true

          # Written by megamode build #{version}. Active only when megamode runs the app on Lambda
          # (megamode sets MEGAMODE=1 for the app's server), so development and test are unchanged.
          # What it does (see Megamode::Rails.configure):
          # - the API Gateway stage (X-Forwarded-Prefix) becomes SCRIPT_NAME, so links read /dev/...;
          # - host authorization admits the execute-api and Function URL hosts (add custom domains
          #   to config.hosts, or to MEGAMODE_HOSTS);
          # - public/ is served by the app, as Lambda has no front server;
          # - assets are never compiled at runtime;
          # - logs go to STDOUT, in sync and without colors (set up before this file runs, by the
          #   Railtie the Gemfile loads).
          # tmp/, caches and bootsnap's cache are under the app, which megamode copies into /tmp.
          if ENV["MEGAMODE"] == "1"
            require "megamode/rails"
            Megamode::Rails.configure(Rails.application)
          end
        RUBY
      end

      # Bundler's settings for the app in the package: its gems are wherever BUNDLE_PATH says at
      # boot (megamode sets it), and the development and test groups were not packaged.
      def bundle_config(without)
        groups = (without.map(&:to_s) | %w[development test]).sort
        "---\nBUNDLE_WITHOUT: \"#{groups.join(":")}\"\n"
      end

      # A SAM template for the package: one function behind an HTTP API and a Function URL, for the
      # package's target runtime and architecture. A Rails app's function gets SECRET_KEY_BASE from a
      # parameter that must be given (an empty one made every request a 500), and RAILS_MASTER_KEY
      # from one that may be (the package leaves config/master.key out: see Secrets). `local`: the Ruby a
      # package for local runs only was built with, which the template says it cannot deploy.
      # Its first line is the stamp by which the next build knows it may replace it. `stream`
      # (`megamode build --stream`): responses stream, which needs the native loop, so the template
      # turns it on for good, with MEGAMODE_INVOKE_MODE=response_stream, the Function URL in
      # RESPONSE_STREAM mode and a REST API whose integration streams (responseTransferMode: STREAM);
      # an HTTP API cannot stream, so there is none.
      #
      # `image` (`megamode build --image`): { context:, tag: }, the package's directory beside the
      # template (which holds the Dockerfile) and the image's tag: the function is that image
      # (PackageType: Image, which SAM builds from the Dockerfile named in its Metadata), and the
      # native loop is turned on by the image's entry point (ImageConfig), as the base image's entry
      # point does not honour AWS_LAMBDA_EXEC_WRAPPER (see Image).
      #
      # `snapstart` (`megamode build --image --snapstart`): { prime: [paths] }. The function has
      # SnapStart on for published versions, and an AutoPublishAlias (SNAPSTART_ALIAS), which each
      # deploy that changes it points at a new version, and which the events, the Function URL and the
      # streaming REST API call: SnapStart applies only to published versions, never to $LATEST. The
      # paths to prime are the function's MEGAMODE_PRIME. `ephemeral_mb` is then at most 512 (Report).
      def template_yaml(name:, code_uri:, runtime:, architecture:, memory:, ephemeral_mb:, env:, version:,
                        rails: false, local: nil, stream: false, image: nil, snapstart: nil)
        prime = snapstart.to_h.fetch(:prime, [])
        env = env.merge("MEGAMODE_PRIME" => prime.join(",")) unless prime.empty?
        return stream_template(name: name, code_uri: code_uri, runtime: runtime, architecture: architecture,
                               memory: memory, ephemeral_mb: ephemeral_mb, env: env, version: version,
                               rails: rails, local: local, image: image, snapstart: snapstart) if stream

        variables = env.map { |k, v| "          #{k}: #{v.to_s.inspect}" }.join("\n")
        warning = local && local_warning(local, runtime)
        body = <<~YAML
          # Each build rewrites this file, and stops if it was edited: to change it, copy it under
          # another name and deploy that one. Deploy with: sam deploy --guided --template-file template.yaml
          #{warning}AWSTemplateFormatVersion: "2010-09-09"
          Transform: AWS::Serverless-2016-10-31
          Description: #{name} on AWS Lambda, run by megamode

          Parameters:
            MegamodeMode:
              Type: String
              AllowedValues: [handler, native]
              Default: handler
              Description: >-
                handler: Lambda's Ruby runtime calls handler.rb for each event (the default).
                native: megamode's own Runtime API loop serves events with no Ruby per request
                (faster per invocation; see megamode's README).
          #{rails ? SECRET_PARAMETERS : ""}
          Conditions:
            NativeLoop: !Equals [!Ref MegamodeMode, native]#{rails ? "\n#{MASTER_KEY_CONDITION.chomp}" : ""}

          Resources:
            #{function_head(code_uri, runtime, architecture, memory, image: image)}
                # API Gateway waits 29 s at most.
                Timeout: 30#{snapstart && SNAPSTART_PROPERTIES}
                # The app is copied and its gems unpacked into /tmp at cold start#{snapstart && SNAPSTART_STORAGE}.
                EphemeralStorage:
                  Size: #{ephemeral_mb}
                Environment:
                  Variables:
          #{variables}#{rails ? SECRET_VARIABLES : ""}
          #{image ? IMAGE_NATIVE_SWITCH : ZIP_NATIVE_SWITCH}
                FunctionUrlConfig:
                  AuthType: NONE
                Events:
                  Http:
                    Type: HttpApi

          Outputs:
            HttpApiUrl:
              Description: The app behind the HTTP API
              Value: !Sub "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
            FunctionUrl:
              Description: The app at its Function URL
              Value: !GetAtt AppUrl.FunctionUrl#{snapstart && SNAPSTART_OUTPUT}
        YAML
        stamped(version, body)
      end

      # The alias SnapStart's template publishes each version under, which callers reach it through.
      SNAPSTART_ALIAS = "live"
      # The alias's logical id, as SAM names what AutoPublishAlias generates (FunctionAliasNAME).
      SNAPSTART_ALIAS_ID = "AppAlias#{SNAPSTART_ALIAS}"
      # The function's SnapStart properties, after its Timeout line.
      SNAPSTART_PROPERTIES = <<~YAML.chomp.gsub(/^/, "      ").prepend("\n")
        # SnapStart: Lambda runs the init when a version is published and snapshots the environment,
        # the app booted; new environments start from that snapshot. Each deploy that changes the
        # function publishes a version and points the alias #{SNAPSTART_ALIAS} at it: call the alias (the
        # events and the URL here do); $LATEST is never snapshotted.
        AutoPublishAlias: #{SNAPSTART_ALIAS}
        SnapStart:
          ApplyOn: PublishedVersions
      YAML
      SNAPSTART_STORAGE = "; SnapStart refuses more than 512 MB"
      SNAPSTART_OUTPUT = <<~YAML.chomp.gsub(/^/, "  ").prepend("\n")
        FunctionAlias:
          Description: The alias that calls the published, snapshotted version (SnapStart)
          Value: !Ref #{SNAPSTART_ALIAS_ID}
      YAML

      # How the MegamodeMode parameter turns the native loop on, as the template's lines after the
      # function's variables: for a zip, Lambda's exec wrapper; for an image, its entry point.
      ZIP_NATIVE_SWITCH = "          AWS_LAMBDA_EXEC_WRAPPER: !If [NativeLoop, /var/task/megamode/runtime, !Ref AWS::NoValue]"
      IMAGE_NATIVE_SWITCH = "      ImageConfig: !If [NativeLoop, {EntryPoint: [/var/task/megamode/runtime]}, !Ref AWS::NoValue]"

      # The function's first lines, the same in both templates, indented as they stand there. An
      # image's function is the image SAM builds from the package's Dockerfile (`sam build`).
      # `native`: the image's entry point is the native loop for good (the streaming template).
      def function_head(code_uri, runtime, architecture, memory, image: nil, native: false)
        code = if image
                 entry = native ? "\n  ImageConfig:\n    EntryPoint: [#{Image::NATIVE_ENTRY_POINT}]" : ""
                 <<~YAML.chomp
                   Metadata:
                     Dockerfile: #{Image::DOCKERFILE}
                     DockerContext: ./#{image[:context]}
                     DockerTag: #{image[:tag].split(":", 2)[1] || "latest"}
                   Properties:
                     PackageType: Image#{entry}
                 YAML
               else
                 <<~YAML.chomp
                   Properties:
                     CodeUri: #{code_uri}
                     Handler: handler.handler
                     Runtime: #{runtime}
                 YAML
               end
        <<~YAML.gsub(/^/, "  ").strip
          App:
            Type: AWS::Serverless::Function
          #{code.gsub(/^/, "  ")}
              Architectures: [#{architecture}]
              # Lambda gives CPU in proportion to memory; 1024 MB boots a Rails app in about a
              # second and a half on cold start.
              MemorySize: #{memory}
        YAML
      end

      def local_warning(local, runtime)
        <<~YAML
          # A package for local runs only (built with #{local}), not verified for Lambda's #{runtime}:
          # deploying it would fail. For a package to deploy, build with megamode build --runtime
          # #{runtime} and #{runtime}'s Ruby, e.g. in the SAM build image public.ecr.aws/sam/build-#{runtime}.
        YAML
      end

      def stamped(version, body)
        "# Written by megamode build #{version} (sha256 #{Digest::SHA256.hexdigest(body)})\n#{body}"
      end

      # A Rails app's parameters, indented as they stand under Parameters. The master key is optional
      # (an app may have no encrypted credentials), so it has an empty default and the function gets
      # no RAILS_MASTER_KEY at all when it is empty.
      SECRET_PARAMETERS = <<~YAML.gsub(/^/, "  ")
        SecretKeyBase:
          Type: String
          NoEcho: true
          MinLength: 32
          Description: >-
            Rails' secret_key_base (SECRET_KEY_BASE): give a long random string, e.g. the output of
            `bin/rails secret`, and keep it the same across deploys (sessions and signed cookies use it)
        RailsMasterKey:
          Type: String
          NoEcho: true
          Default: ""
          Description: >-
            Rails' master key (RAILS_MASTER_KEY), which decrypts the app's credentials: what
            config/master.key (or config/credentials/production.key) holds, which the package leaves
            out. Empty: the function gets none
      YAML
      MASTER_KEY_CONDITION = "  HasRailsMasterKey: !Not [!Equals [!Ref RailsMasterKey, \"\"]]\n"
      SECRET_VARIABLES = "\n          SECRET_KEY_BASE: !Ref SecretKeyBase" \
                         "\n          RAILS_MASTER_KEY: !If [HasRailsMasterKey, !Ref RailsMasterKey, !Ref AWS::NoValue]"

      # The streaming template's native loop, for good (Lambda's Ruby runtime client cannot stream).
      STREAM_ZIP_NATIVE = "          # Lambda's Ruby runtime client cannot stream: megamode's native loop does.\n" \
                          "          AWS_LAMBDA_EXEC_WRAPPER: /var/task/megamode/runtime"
      STREAM_IMAGE_NATIVE = "          # Lambda's Ruby runtime client cannot stream: megamode's native loop, the image's\n" \
                            "          # entry point (ImageConfig, above), does."

      # The streaming template (see template_yaml). The REST API is defined by OpenAPI, because its
      # Lambda integration must call the function's response-streaming-invocations path with
      # responseTransferMode STREAM, which an `Api` event of SAM's does not set up.
      def stream_template(name:, code_uri:, runtime:, architecture:, memory:, ephemeral_mb:, env:, version:,
                          rails:, local:, image: nil, snapstart: nil)
        # With SnapStart the REST API calls the alias, as SAM makes the Function URL do.
        target = snapstart ? SNAPSTART_ALIAS_ID : "App.Arn"
        target_ref = snapstart ? SNAPSTART_ALIAS_ID : "App"
        variables = env.map { |k, v| "          #{k}: #{v.to_s.inspect}" }.join("\n")
        warning = local && local_warning(local, runtime)
        integration = <<~YAML.chomp
          x-amazon-apigateway-integration:
                          type: aws_proxy
                          httpMethod: POST
                          responseTransferMode: STREAM
                          timeoutInMillis: 900000
                          uri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/${#{target}}/response-streaming-invocations"
        YAML
        body = <<~YAML
          # Each build rewrites this file, and stops if it was edited: to change it, copy it under
          # another name and deploy that one. Deploy with: sam deploy --guided --template-file template.yaml
          #{warning}AWSTemplateFormatVersion: "2010-09-09"
          Transform: AWS::Serverless-2016-10-31
          Description: #{name} on AWS Lambda, run by megamode, streaming its responses

          #{rails ? "Parameters:\n#{SECRET_PARAMETERS}\nConditions:\n#{MASTER_KEY_CONDITION}" : ""}
          Resources:
            #{function_head(code_uri, runtime, architecture, memory, image: image, native: true)}
                # A stream (Server-Sent Events, a large download) may outlast a buffered answer;
                # the REST API's streaming integration waits up to 15 minutes.
                Timeout: 300#{snapstart && SNAPSTART_PROPERTIES}
                # The app is copied and its gems unpacked into /tmp at cold start#{snapstart && SNAPSTART_STORAGE}.
                EphemeralStorage:
                  Size: #{ephemeral_mb}
                Environment:
                  Variables:
          #{variables}#{rails ? SECRET_VARIABLES : ""}
          #{image ? STREAM_IMAGE_NATIVE : STREAM_ZIP_NATIVE}
                    MEGAMODE_INVOKE_MODE: response_stream
                FunctionUrlConfig:
                  AuthType: NONE
                  InvokeMode: RESPONSE_STREAM

            RestApi:
              Type: AWS::Serverless::Api
              Properties:
                StageName: prod
                DefinitionBody:
                  openapi: "3.0.1"
                  info:
                    title: #{name}
                    version: "1"
                  paths:
                    /:
                      x-amazon-apigateway-any-method:
                        #{integration}
                    /{proxy+}:
                      x-amazon-apigateway-any-method:
                        #{integration}

            RestApiInvoke:
              Type: AWS::Lambda::Permission
              Properties:
                Action: lambda:InvokeFunction
                FunctionName: !Ref #{target_ref}
                Principal: apigateway.amazonaws.com
                SourceArn: !Sub "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestApi}/*"

          Outputs:
            RestApiUrl:
              Description: The app behind the REST API, streaming
              Value: !Sub "https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod/"
            FunctionUrl:
              Description: The app at its Function URL, streaming
              Value: !GetAtt AppUrl.FunctionUrl#{snapstart && SNAPSTART_OUTPUT}
        YAML
        stamped(version, body)
      end
    end
  end
end
