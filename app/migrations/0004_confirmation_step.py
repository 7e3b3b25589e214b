from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.emails import StepKind
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('encore', '0003_email_sequences')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='EmailStep',
            name='kind',
            field=fields.CharEnumField(description='CONFIRMATION: confirmation\nREMINDER: reminder\nSTARTING: starting\nFOLLOW_UP: follow_up', enum_type=StepKind, max_length=16),
        ),
    ]
