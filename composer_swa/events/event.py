"""The events a training loop fires, in the order it fires them."""

from __future__ import annotations

from enum import Enum

__all__ = ["Event"]


class Event(str, Enum):
    """A point in the training loop where algorithms and callbacks may act.

    The value of each event is the name of the :class:`~composer_swa.Callback` method it calls
    (``Event.BATCH_END.value == "batch_end"``). The loop below is the contract: any loop that fires
    events in this order can drive the same algorithms. Our :class:`~composer_swa.Trainer`, a plain
    PyTorch loop and the Hugging Face and Lightning adapters all fire them through one driver,
    :class:`~composer_swa.events.loop.Loop` (which also counts the timestamp and closes epochs)::

        # <INIT>                     algorithms and callbacks see the constructed State
        # <FIT_START>                run length known; Time strings resolve to batch counts here
        for epoch in range(num_epochs):
            # <EPOCH_START>
            for batch in train_dataloader:
                # <BATCH_START>
                for microbatch in split(batch, grad_accum):
                    outputs = model(microbatch)
                    # <AFTER_FORWARD>         state.outputs holds the last microbatch's outputs
                    loss = loss_fn(outputs, targets)
                    # <AFTER_LOSS>            state.loss holds that microbatch's loss
                    loss.backward()
                    # <AFTER_BACKWARD>
                scaler.unscale_(optimizer)   # fp16 only: gradients in their true scale from here on
                # <AFTER_TRAIN_BATCH>         every microbatch's gradient is in; the optimizer has not stepped
                optimizer.step()
                scheduler.step()             # per batch (or per epoch), unless an algorithm owns the LR
                timestamp.batch += 1         # the batch is counted before BATCH_END
                # <BATCH_END>                state.timestamp.batch counts the batch that just finished
                if it is time to evaluate (eval_interval in batches):
                    run_evaluation()
            timestamp.epoch += 1
            # <EPOCH_END>
            if it is time to evaluate (eval_interval in epochs):
                run_evaluation()
        # <FIT_END>
        run_evaluation()                 # our Trainer, unless the last batch was just evaluated

        def run_evaluation():
            # <EVAL_START>
            for batch in eval_dataloader:
                outputs = model(batch)
                # <EVAL_BATCH_END>
            # <EVAL_END>                 state.eval_metrics holds this evaluation's metrics

    A run whose ``max_duration`` falls mid-epoch ends without that epoch's EPOCH_END.

    Ordering: at every event, algorithms run in the order of the ``algorithms`` list, then callbacks
    in the order of the ``callbacks`` list. AFTER_* events keep the same rule: we have no BEFORE_*
    events to pair them with, and a single rule is the one users can predict from their list. One
    exception: at an event where an algorithm may replace the weights (``Algorithm.replaces_weights_at``:
    SWA at swa_end, EMA and LAWA at FIT_END), it runs after the others, so every snapshot reads the
    live weights whatever the list order (see :mod:`composer_swa.events.composition`).

    AFTER_TRAIN_BATCH (Composer's name) is where gradients are changed before the step, e.g. by
    :class:`~composer_swa.algorithms.GradientClipping`: it fires once per optimizer step, after
    the last microbatch's backward (under DDP, after the gradients are averaged across processes).
    """

    INIT = "init"
    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    BATCH_START = "batch_start"
    AFTER_FORWARD = "after_forward"
    AFTER_LOSS = "after_loss"
    AFTER_BACKWARD = "after_backward"
    AFTER_TRAIN_BATCH = "after_train_batch"
    BATCH_END = "batch_end"
    EPOCH_END = "epoch_end"
    EVAL_START = "eval_start"
    EVAL_BATCH_END = "eval_batch_end"
    EVAL_END = "eval_end"
    FIT_END = "fit_end"
