from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('encore', '0006_analytics')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='InteractionResponse',
            index=Index(fields=['session_id', 'registrant_id']),
        ),
    ]
